"""What a client cannot do to ``lmforge serve``: send a huge body or prompt, stall a body, read the API docs
unasked, or get anything but OpenAI's error shape back. Raw sockets where the point is what goes on the wire."""
from __future__ import annotations

import json
import re
import select
import socket
import time

import httpx
import openai
import pytest

from .conftest import ThreadServer

QUESTION = [{"role": "user", "content": "Is Paris the capital?"}]
SMALL_BODY = 2048
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def small(engine):
    """A server with a 2 KiB body limit and a 1 s body read timeout."""
    from lmforge.serve.openai_server import create_app

    with ThreadServer(create_app(engine, max_body_bytes=SMALL_BODY, body_timeout_s=TIMEOUT_S)) as live:
        yield live


@pytest.fixture
def engine_calls(engine, monkeypatch):
    """Records every prompt the engine tokenises (the server does no tokenising of its own)."""
    calls = []
    for name in ("prompt_ids", "encode"):
        real = getattr(engine, name)

        def record(prompt, real=real):
            calls.append(prompt)
            return real(prompt)

        monkeypatch.setattr(engine, name, record)
    return calls


@pytest.fixture
def submitted(engine, monkeypatch):
    """Records the sampling settings of every request handed to the generation engine."""
    calls = []
    real = engine.submit

    def submit(prompts, params):
        calls.append(params)
        return real(prompts, params)

    monkeypatch.setattr(engine, "submit", submit)
    return calls


def head(length: int | None, path: str = "/v1/chat/completions") -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{size}\r\n"
            "Connection: close\r\n\r\n").encode()


def read_until_closed(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the response, read until the server closes the connection (a socket timeout
    here means it held the connection open)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            # A server that answers early and closes while bytes we sent lie unread in its buffer makes the kernel
            # send a reset instead of a clean close; the answer itself arrived before it, so a whole one is kept.
            if not _whole_response(data):
                raise
            break
        if not chunk:
            break
        data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


def _whole_response(data: bytes) -> bool:
    """Whether ``data`` holds a status line, the headers and as many body bytes as Content-Length says."""
    headers, sep, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", headers)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


def exchange(port: int, *writes: bytes, pause: float = 0.0) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for data in writes:
            if select.select([sock], [], [], pause)[0]:  # the server has answered: stop writing
                break
            sock.sendall(data)
        return read_until_closed(sock)


def assert_openai_error(body: dict) -> dict:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_32_mb_body_is_refused_from_its_length_before_it_is_read(server, engine_calls):
    start = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "' + b"x" * 16384
    status, body = exchange(server.port, head(32 * 2**20) + start)  # 16 KiB of the 32 MiB, then wait
    assert status == 413 and engine_calls == []
    err = assert_openai_error(body)
    assert err["code"] == "request_too_large" and str(4 * 2**20) in err["message"]


def test_a_chunked_body_is_counted_as_it_arrives(small, engine_calls):
    chunk = b"x" * 1000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    status, body = exchange(small.port, head(None) + chunked)
    assert status == 413 and engine_calls == [] and str(SMALL_BODY) in assert_openai_error(body)["message"]
    with openai.OpenAI(base_url=small.url + "/v1", api_key="x", max_retries=0, timeout=60) as client:
        r = client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0, max_tokens=2)
    assert r.choices[0].message.content == "A" and len(engine_calls) == 1  # a body under the limit is served


def test_a_prompt_longer_than_the_context_can_hold_is_refused_before_tokenising(server, engine, engine_calls):
    from lmforge.serve.limits import max_prompt_chars

    limit = max_prompt_chars(engine.tokenizer, engine.context)
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60) as client:
        def ask(text):
            return client.chat.completions.create(model="tiny-chat", max_tokens=1, messages=[
                {"role": "system", "content": "x"}, {"role": "user", "content": text}])

        with pytest.raises(openai.BadRequestError) as exc:
            ask("y" * limit)
        assert exc.value.body["code"] == "context_length_exceeded" and engine_calls == []
        with pytest.raises(openai.BadRequestError) as exc:  # at the bound the model decides, from its tokens
            ask("y" * (limit - 1))
        assert exc.value.body["param"] == "messages" and len(engine_calls) == 1


def test_a_stop_sequence_longer_than_the_completion_can_be_is_dropped(server, engine, submitted):
    from lmforge.serve.limits import longest_token_chars

    most = 4 * longest_token_chars(engine.tokenizer)  # the most characters 4 tokens can spell
    never = "ab" * most
    with openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60) as client:
        r = client.chat.completions.create(model="tiny-chat", messages=QUESTION, temperature=0, max_tokens=4,
                                           stop=[never, never[:most + 1], never[:most], "A"])
    assert r.choices[0].message.content == "" and r.choices[0].finish_reason == "stop"  # "A" still stops it
    (params,) = submitted
    assert params.stop == [never[:most], "A"]


def test_a_stalled_body_is_answered_408_and_closed(small, engine_calls):
    start = time.monotonic()
    status, body = exchange(small.port, head(1000) + b'{"model": "ti')
    assert status == 408 and engine_calls == [] and "did not arrive within 1 s" in assert_openai_error(body)["message"]
    assert time.monotonic() - start >= TIMEOUT_S


def test_a_trickled_body_is_cut_at_the_deadline_not_per_chunk(small, engine_calls):
    # one byte every 0.2 s would never trip a per-chunk timeout of 1 s; 40 of them take 8 s
    status, body = exchange(small.port, head(1000), *[b" "] * 40, pause=0.2)
    assert status == 408 and engine_calls == []


def test_a_body_sent_in_parts_within_the_timeout_is_served(small):
    payload = json.dumps({"model": "tiny-chat", "messages": QUESTION, "max_tokens": 1, "temperature": 0}).encode()
    status, body = exchange(small.port, head(len(payload)) + payload[:10], payload[10:], pause=0.1)
    assert status == 200 and body["choices"][0]["message"]["content"] == "A"


def test_api_docs_are_off_by_default(server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        r = httpx.get(server.url + path)
        assert r.status_code == 404 and assert_openai_error(r.json())


def test_api_docs_on_request(engine):
    from fastapi.testclient import TestClient

    from lmforge.serve.openai_server import create_app

    with TestClient(create_app(engine, docs=True)) as client:
        assert "/v1/chat/completions" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200 and client.get("/redoc").status_code == 200


MESSAGE = '[{"role": "user", "content": "x"}]'


@pytest.mark.parametrize("body, message", [
    ('{"model": "tiny-chat", "messages": ' + "[" * 5000 + "]" * 5000 + "}", "could not be parsed"),
    ('{"model": "tiny-chat", "messages": [', "not valid JSON"),
    ("[1, 2]", "object"),
    ('{"model": "tiny-chat", "messages": ' + MESSAGE + ', "max_tokens": ' + "9" * 5000 + "}", "could not be parsed"),
    ('{"model": "tiny-chat", "messages": ' + MESSAGE + ', "temperature": NaN}', "temperature"),
    ('{"model": "tiny-chat", "messages": ' + MESSAGE + ', "seed": ' + str(2**64) + "}", "seed"),
])
def test_bad_json_answers_400_in_openai_shape(server, engine_calls, body, message):
    r = httpx.post(server.url + "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and engine_calls == []
    assert message in assert_openai_error(r.json())["message"]


def test_unknown_routes_and_methods_answer_in_openai_shape(server):
    assert httpx.get(server.url + "/v2/nothing").status_code == 404
    assert_openai_error(httpx.get(server.url + "/v2/nothing").json())
    r = httpx.get(server.url + "/v1/chat/completions")
    assert r.status_code == 405 and assert_openai_error(r.json())
