"""The endpoint judge: retries and server errors on a scripted transport, then against a real running
``lmforge serve`` (a subprocess on a free port, the tiny model), compared with the local judge on that model."""
import json
import math
import os
import subprocess
import sys
import time

import httpx
import pytest

from lmforge.errors import InputError
from lmforge.feedback.judge import default_rubric, item_queries, judge_batch
from lmforge.feedback.judge.core import choice_probs
from lmforge.feedback.judge.endpoint import EndpointBackend, endpoint_urls
from lmforge.feedback.store import Store
from tiny_chat import one_torch_thread, session_model

from .conftest import free_port, make_items
from .test_judge_local import run


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield

class Served:
    """``lmforge serve TINY --name tiny-chat`` in a subprocess on a free port. It boots (imports torch and
    transformers: seconds) while the tests do their local work; ``url()`` waits until it answers."""

    def __init__(self, path, log_path):
        self.path, self.port = path, free_port()
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lmforge", "serve", str(path), "--port", str(self.port), "--name", "tiny-chat",
             "--device", "cpu", "--log-level", "warning"], stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"})
        self.ready = False

    def url(self) -> str:
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 180
        while not self.ready:
            try:
                self.ready = httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.TransportError:
                pass
            if not self.ready and (self.proc.poll() is not None or time.time() > deadline):
                self.log.seek(0)
                raise RuntimeError(f"lmforge serve did not start:\n{self.log.read()[-3000:]}")
            time.sleep(0.1)
        return url

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module", autouse=True)
def served(tmp_path_factory):  # autouse: it boots while the scripted tests run
    server = Served(session_model(tmp_path_factory), tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.stop()


def test_endpoint_urls():
    assert endpoint_urls("http://h:1") == ("http://h:1/v1/chat/completions", "http://h:1/v1/models")
    assert endpoint_urls("http://h:1/v1/") == ("http://h:1/v1/chat/completions", "http://h:1/v1/models")
    assert endpoint_urls("https://x/api/v1/chat/completions")[1] == "https://x/api/v1/models"
    with pytest.raises(InputError, match="http"):
        endpoint_urls("h:1")


# --------------------------------------------------------------------------- scripted server behaviour

def scripted(*replies):
    """An httpx client whose server answers with ``replies`` in turn (callables get the request)."""
    seen, queue = [], list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = queue.pop(0)
        return reply(request) if callable(reply) else reply
    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def completion(text: str, logprobs=None) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "logprobs": logprobs, "finish_reason": "stop"}]})


PAIR = item_queries(default_rubric(), [{"role": "user", "content": "q"}], ["x", "y"], criteria=False)


def test_retries_with_backoff_then_succeeds():
    client, seen = scripted(httpx.Response(503, headers={"retry-after": "0"}), httpx.Response(429),
                            completion("B", {"content": [{"token": " B", "logprob": -0.1, "top_logprobs": [
                                {"token": " B", "logprob": -0.1}, {"token": "A", "logprob": -2.4},
                                {"token": "B", "logprob": -3.0}]}]}))
    backend = EndpointBackend("http://judge", model="m", retries=2, backoff=0.0, client=client)
    (got,) = backend.answer(PAIR[:1])
    assert got == pytest.approx({"A": -2.4, "B": math.log(math.exp(-0.1) + math.exp(-3.0))})  # " B" and "B" count
    assert backend.stats["retries"] == 2 and len(seen) == 3
    assert json.loads(seen[0].content)["logprobs"] is True and json.loads(seen[0].content)["temperature"] == 0


def test_a_server_without_logprobs_is_read_as_text():
    client, seen = scripted(httpx.Response(400, json={"error": {"message": "logprobs is not supported"}}),
                            completion("Response B is better."), completion("**A**"))
    backend = EndpointBackend("http://judge/v1", model="m", client=client, concurrency=1)
    assert backend.answer(PAIR) == [{"B": 0.0}, {"A": 0.0}]
    assert backend.logprobs is False and "logprobs" not in json.loads(seen[2].content)
    assert backend.stats["verdicts from text"] == 2
    client, _ = scripted(completion("I cannot decide."))  # ignores logprobs and writes no verdict
    backend = EndpointBackend("http://judge", model="m", client=client)
    assert backend.answer(PAIR[:1]) == [{}] and backend.stats["unreadable verdicts"] == 1


@pytest.mark.parametrize("replies, kwargs, message", [
    ([httpx.Response(500, text="boom")] * 3, {"model": "m"}, "failed after 3 attempt(s): HTTP 500: boom"),
    ([httpx.Response(404, json={"error": {"message": "no such model"}})], {"model": "m"},
     "answered HTTP 404: no such model"),
    ([httpx.Response(200, text="<html>")], {"model": "m"}, "sent no completion"),
])
def test_server_errors_are_one_line_input_errors(replies, kwargs, message):
    client, _ = scripted(*replies)
    backend = EndpointBackend("http://judge", retries=2, backoff=0.0, client=client, **kwargs)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        backend.answer(PAIR[:1])
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("models, kwargs, message", [
    (httpx.Response(401, json={"error": {"message": "bad key"}}), {}, "refused the API key"),
    (httpx.Response(200, json={"data": [{"id": "a"}, {"id": "b"}]}), {}, "name the judge model with --api-model"),
    (httpx.Response(200, json={"data": [{"id": "a"}]}), {"model": "z"}, "does not serve 'z'"),
])
def test_check_settles_the_model(models, kwargs, message):
    client, _ = scripted(models)
    with pytest.raises(InputError, match=message):
        EndpointBackend("http://judge", client=client, **kwargs).check()
    client, _ = scripted(httpx.Response(404))
    assert EndpointBackend("http://judge", model="given", client=client).check() == "given"  # no model list: trust


# --------------------------------------------------------------------------- against lmforge serve

def test_endpoint_verdicts_equal_the_local_ones(served):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.feedback.judge.local import LocalBackend

    path = served.path
    queries = item_queries(default_rubric(), [{"role": "user", "content": "Capital of France?"}],
                           ["Paris.", "Nowhere, far away."], criteria=True)
    local = LocalBackend(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))
    want = local.answer(queries)
    remote = EndpointBackend(served.url() + "/v1", concurrency=3)
    assert remote.check() == "tiny-chat"
    got = remote.answer(queries)
    for q, g, w in zip(queries, got, want):
        assert choice_probs(g, q.choices) == pytest.approx(choice_probs(w, q.choices), abs=1e-3)
    assert remote.stats["verdicts from log-probabilities"] == remote.stats["requests"] == len(queries) == 12
    assert remote.logprobs is True


def test_judge_cli_against_lmforge_serve(served, tmp_path, capsys):
    db = tmp_path / "fb.db"
    Store.open(str(db)).add_batch("b", make_items(n=2, k=3))
    code, out, err = run(["judge", "b", "--model", served.path, "--db", db, "--name", "local", "--json"], capsys)
    assert code == 0, err
    code, out, err = run(["judge", "b", "--endpoint", served.url(), "--db", db, "--name", "remote", "--json"],
                         capsys)
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["judge"] == "ai:remote" and summary["created"] == 2
    assert summary["backend: verdicts from log-probabilities"] == summary["queries"] == 2 * (6 + 15)
    assert summary["tied pairs"] == 6 and summary["mean P(A)"] > 0.7  # its position bias, cancelled
    rows = json.loads(out)["agreement"]
    assert [(r["with"], r["kind"], r["prompts"]) for r in rows] == [("local", "ai", 2)]
    labels = {(r.labeler, r.item_key): r for r in Store.open(str(db)).labels(["b"])}
    for key in ("p0", "p1"):  # same model, same verdicts, same labels
        remote, local = labels[("remote", key)], labels[("local", key)]
        assert remote.source == "ai:remote" and (remote.ranking, remote.ties) == (local.ranking, local.ties)
        assert remote.scores == local.scores and remote.scores is not None


def test_written_verdicts_when_logprobs_are_not_used(served, sqlite_store):
    sqlite_store.add_batch("b", make_items(n=2, k=3))
    backend = EndpointBackend(served.url(), model="tiny-chat", logprobs=False, concurrency=2)
    summary = judge_batch(sqlite_store, "b", backend, rubric=default_rubric(), name="texty")
    # the model writes "A" whatever it is asked: every pair says A both ways (a tie), no digit to read
    assert summary["backend: verdicts from text"] == 12 and summary["backend: unreadable verdicts"] == 30
    assert summary["tied pairs"] == 6 and summary["order-consistent share"] == 0.0 and summary["unscored"] == 30
    labels = sqlite_store.labels(["b"])
    assert all(r.ties == [[0, 1, 2]] and r.scores is None for r in labels)
