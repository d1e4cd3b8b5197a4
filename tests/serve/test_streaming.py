"""Streaming (server-sent events), /v1/completions, the API key, admission (429), timeouts, cancelled streams
and /metrics, all through the official ``openai`` client over real HTTP."""
import time

import httpx
import openai
import pytest

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is Paris the capital?"}]


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
        yield c


def collect(chunks):
    """Per choice index: the streamed text and the finish reason; plus the usage chunk (or None)."""
    texts, finish, used, roles = {}, {}, None, set()
    for ch in chunks:
        if ch.usage is not None:
            assert ch.choices == []
            used = ch.usage
        for c in ch.choices:
            delta = getattr(c, "delta", None)
            if delta is not None:
                if delta.role:
                    roles.add(c.index)
                piece = delta.content or ""
            else:
                piece = c.text
            texts[c.index] = texts.get(c.index, "") + piece
            if c.finish_reason:
                assert c.index not in finish  # one finish per choice
                finish[c.index] = c.finish_reason
    return texts, finish, used, roles


def test_chat_stream_matches_the_plain_answer(client, engine):
    whole = client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=1.5, max_tokens=6,
                                           seed=11, n=3)
    chunks = list(client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=1.5,
                                                 max_tokens=6, seed=11, n=3, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(ch.object == "chat.completion.chunk" and ch.model == "tiny-chat" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    texts, finish, used, roles = collect(chunks)
    assert roles == {0, 1, 2}  # each choice opens with the assistant role
    assert texts == {c.index: c.message.content for c in whole.choices}  # same seed, same samples, streamed
    assert finish == {c.index: c.finish_reason for c in whole.choices}
    assert used.completion_tokens == whole.usage.completion_tokens
    assert used.prompt_tokens == len(engine.prompt_ids(QUESTION)) == whole.usage.prompt_tokens
    # without include_usage there is no usage chunk
    assert collect(client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0,
                                                  max_tokens=3, stream=True))[2] is None


def test_stream_stop_string_is_never_sent(client):
    chunks = client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0, max_tokens=4,
                                            stop=["A"], stream=True)
    texts, finish, _, _ = collect(chunks)
    assert texts == {0: ""} and finish == {0: "stop"}


def test_completions_endpoint(client, engine):
    prompt = "Answer with a single letter: A or B."
    r = client.completions.create(model="tiny-chat", prompt=[prompt, prompt + " Now."], max_tokens=3,
                                  temperature=1.5, seed=5, n=2, logprobs=2)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and len(r.choices) == 4
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    for c in r.choices:
        lp = c.logprobs
        assert "".join(lp.tokens) == c.text and len(lp.token_logprobs) == len(lp.tokens) <= 3
        assert all(len(top) <= 2 for top in lp.top_logprobs) and lp.text_offset[:1] in ([], [0])
    assert r.usage.prompt_tokens == len(engine.encode(prompt)) + len(engine.encode(prompt + " Now."))
    assert r.usage.completion_tokens == sum(len(c.logprobs.tokens) for c in r.choices)
    again = client.completions.create(model="tiny-chat", prompt=[prompt, prompt + " Now."], max_tokens=3,
                                      temperature=1.5, seed=5, n=2)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]
    streamed = list(client.completions.create(model="tiny-chat", prompt=[prompt, prompt + " Now."], max_tokens=3,
                                              temperature=1.5, seed=5, n=2, stream=True))
    assert all(ch.object == "text_completion" for ch in streamed)
    texts, finish, _, _ = collect(streamed)
    assert texts == {c.index: c.text for c in r.choices} and finish == {c.index: c.finish_reason for c in r.choices}
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-5", prompt="x", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="echo") as exc:
        client.completions.create(model="tiny-chat", prompt="x", max_tokens=2, echo=True)
    assert exc.value.body["param"] == "echo"
    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model="tiny-chat", prompt="x", max_tokens=2, suffix="!")


def test_api_key(make_server):
    _, live = make_server(api_key="sesame")
    for key in ("wrong", "sesame "[:0] or "nope"):
        with openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as exc:
                bad.models.list()
            assert exc.value.status_code == 401 and exc.value.body["code"] == "invalid_api_key"
    r = httpx.post(live.url + "/v1/chat/completions", json={"model": "tiny-chat", "messages": QUESTION})
    assert r.status_code == 401 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    with openai.OpenAI(base_url=live.url + "/v1", api_key="sesame", max_retries=0) as good:
        assert good.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0,
                                            max_tokens=2).choices[0].message.content == "A"
    assert httpx.get(live.url + "/health").status_code == 200  # health and metrics need no key


@pytest.fixture(scope="module")
def endless(make_server):
    """An engine that never stops at end-of-turn, with 2 slots: a request runs to max_tokens (3,000 tokens take
    about 20 s with the tiny model)."""
    eng, live = make_server(max_queue=2)
    eng.engine.stops = eng.engine.backend.stops = []
    eng.model.generation_config.eos_token_id = None  # else generate falls back to the model's own EOS
    return eng, live


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


def test_full_queue_429_and_cancelled_streams_free_their_slot(endless):
    eng, live = endless
    with openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
        def start():
            s = c.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=1.0, seed=1,
                                          max_tokens=3000, stream=True)
            next(iter(s))  # the opening chunk: admitted and queued
            return s
        streams = [start(), start()]
        assert eng.in_flight == 2
        with pytest.raises(openai.RateLimitError) as exc:
            c.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=2)
        assert exc.value.status_code == 429 and exc.value.body["code"] == "queue_full"
        for s in streams:
            s.close()
        wait_for(lambda: eng.in_flight == 0)
        # the batch ends within seconds, not the ~20 s that 3,000 tokens take: the cancelled rows stopped
        wait_for(lambda: eng.engine._lock.acquire(blocking=False) and (eng.engine._lock.release() or True), 5.0)
        metrics = httpx.get(live.url + "/metrics").text
        assert "lmforge_requests_cancelled_total 2" in metrics, metrics
        assert "lmforge_requests_rejected_total 1" in metrics
        # the freed slots serve again
        r = c.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0, max_tokens=5)
        assert r.usage.completion_tokens == 5


def test_request_timeout_is_504(endless):
    eng, live = endless
    eng.request_timeout_s = 0.2
    try:
        with openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            with pytest.raises(openai.InternalServerError) as exc:
                c.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=3000)
            assert exc.value.status_code == 504 and exc.value.body["code"] == "timeout"
            with pytest.raises(openai.APIError, match="timeout"):
                list(c.chat.completions.create(model="tiny-chat", messages=QUESTION, max_tokens=3000, stream=True))
        wait_for(lambda: eng.in_flight == 0)
        assert "lmforge_requests_timed_out_total 2" in httpx.get(live.url + "/metrics").text
    finally:
        eng.request_timeout_s = 600.0


def test_metrics_count_requests_and_tokens(client, server):
    before = httpx.get(server.url + "/metrics").text
    client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0, max_tokens=1)
    after = httpx.get(server.url + "/metrics").text

    def value(text, name):
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))
    assert value(after, "lmforge_requests_total") == value(before, "lmforge_requests_total") + 1
    assert value(after, "lmforge_completion_tokens_total") == value(before, "lmforge_completion_tokens_total") + 1
    assert value(after, "lmforge_generation_tokens_per_second") > 0
    assert value(after, "lmforge_requests_in_flight") == 0 and value(after, "lmforge_queue_depth") == 0


def test_tokens_that_arrive_with_the_end_are_streamed(engine):
    """A request already finished when its stream starts sends all of its text (from the last poll)."""
    import asyncio
    import json
    from contextlib import nullcontext

    from lmforge.serve.engine import SamplingParams
    from lmforge.serve.streaming import stream

    ids = engine.prompt_ids(QUESTION)
    params = engine.check([ids], SamplingParams(temperature=1.5, max_new_tokens=6, seed=11, n=3))
    handle = engine.submit([ids], params)
    want = [engine.view(c, params).text for c in handle.result(30)[0]]

    async def lines():
        def chunk(j, text, finish, first):
            return {"choices": [{"index": j, "text": text or ""}]}
        return [x async for x in stream(engine, handle, params, len(ids), chunk, False, nullcontext())]
    got = [""] * 3
    for line in asyncio.run(lines()):
        data = line.removeprefix("data: ").strip()
        if data != "[DONE]":
            for c in json.loads(data)["choices"]:
                got[c["index"]] += c["text"]
    assert got == want and any(want)
