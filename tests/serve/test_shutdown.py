"""``lmforge serve`` as a process: SIGTERM with a stream in flight ends it cleanly, exit code 0, within its
``--shutdown-timeout`` (the stream cut, the generation engine closed), not when the stream would have ended."""
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from serve.conftest import free_port

GRACE_S = 1.0


@pytest.mark.slow
def test_sigterm_with_a_stream_in_flight_exits_0(chatty_model_path):
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lmforge.cli.main", "serve", str(chatty_model_path),
                             "--port", str(port), "--name", "chatty", "--shutdown-timeout", str(GRACE_S),
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

        pieces, finished, failure = [], [], []
        first = threading.Event()

        def stream() -> None:  # 4,000 tokens: seconds of work, far more than the grace period
            try:
                with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
                    for ch in c.chat.completions.create(model="chatty", temperature=0, max_tokens=4000,
                                                        stream=True, messages=[{"role": "user", "content": "Hi"}]):
                        for choice in ch.choices:
                            if choice.delta.content:
                                pieces.append(choice.delta.content)
                                first.set()
                            if choice.finish_reason:
                                finished.append(choice.finish_reason)
            except Exception as e:  # noqa: BLE001 - a cut stream: what the test expects
                failure.append(e)
            finally:
                first.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first.wait(60) and pieces, failure
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=GRACE_S + 15)
        took = time.monotonic() - sent
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped (requests ended, generation engines closed)" in err
    assert took < GRACE_S + 8, took  # the grace period, then the cancelled rows end at their next decode step
    assert not reader.is_alive()
    assert finished == [] and failure, "the 4,000-token stream was cut, not waited for"
    assert 0 < len(pieces) < 4000
