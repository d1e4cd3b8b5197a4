"""Load on loopback: 32 concurrent streaming clients against 16 request slots for a bounded time. Every request
ends with a complete answer (a finish reason on every choice) or a clean 429; the server stays up and its
slots and queue drain to zero."""
import threading
import time

import httpx
import openai

QUESTION = [{"role": "user", "content": "Answer with a single letter: A or B."}]
CLIENTS, SLOTS, SECONDS = 32, 16, 6.0


def test_32_streaming_clients(make_server):
    eng, live = make_server(max_queue=SLOTS)
    outcomes, errors = [], []
    stop_at = time.monotonic() + SECONDS

    def client(k: int) -> None:
        with openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            while time.monotonic() < stop_at:
                try:
                    finish = {}
                    for ch in c.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=1.0,
                                                        max_tokens=8, n=1 + k % 2, stream=True):
                        for choice in ch.choices:
                            if choice.finish_reason:
                                finish[choice.index] = choice.finish_reason
                    assert set(finish) == set(range(1 + k % 2)) and set(finish.values()) <= {"stop", "length"}
                    outcomes.append("ok")
                except openai.RateLimitError as e:
                    assert e.body["code"] == "queue_full"
                    outcomes.append("429")
                    time.sleep(0.01)
                except Exception as e:  # noqa: BLE001 - any other outcome fails the test below
                    errors.append(repr(e))
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert outcomes.count("ok") >= CLIENTS  # every client got answers, not only refusals
    assert httpx.get(live.url + "/health").json()["status"] == "ok"
    deadline = time.monotonic() + 10
    while eng.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert eng.in_flight == 0 and eng.queued == 0
    metrics = httpx.get(live.url + "/metrics").text
    assert f"lmforge_requests_rejected_total {outcomes.count('429')}" in metrics
    assert f"lmforge_requests_total {outcomes.count('ok')}" in metrics
