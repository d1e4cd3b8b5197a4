"""The local judge backend on a tiny model (verdict log-probabilities, batching, truncation) and
``lmforge judge --model`` end to end: labels stored as ``ai:<name>``, exported, agreement, bad input."""
import json
import math
import socket

import pytest
import torch

from lmforge.cli.main import main
from lmforge.data.preference import read_feedback
from lmforge.feedback.judge import default_rubric, item_queries
from lmforge.feedback.judge.local import LocalBackend
from lmforge.feedback.judge.prompts import Query
from lmforge.feedback.store import Store
from tiny_chat import one_torch_thread, session_model

from .conftest import FAST_HASHER, make_items
from .test_judge import world_like_items


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = session_model(tmp_path_factory)
    return path, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def random_lm(tiny):
    """Two blocks of large random weights: every token of the prompt moves the verdict (unlike ``tiny``)."""
    from lmforge.models.factory import ModelConfig, create_model

    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=4096), tiny[2])
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=0.5)
    return model.eval(), tiny[2]


def run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@torch.no_grad()
def one_at_a_time(model, tok, query: Query) -> dict[str, float]:
    """log P(choice) the plain way: one unpadded prompt, summing the probabilities of the choice's spellings
    (itself, and " choice" when that is a single token)."""
    ids = tok.apply_chat_template(query.messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    out = {}
    for c in query.choices:
        total = 0.0
        spaced = tuple(tok.encode(" " + c, add_special_tokens=False))
        for form in dict.fromkeys([tuple(tok.encode(c, add_special_tokens=False))] + [spaced] * (len(spaced) == 1)):
            seq = list(ids) + list(form)
            lp = torch.log_softmax(model(input_ids=torch.tensor([seq[:-1]])).logits[0].float(), -1)
            total += math.exp(sum(lp[len(ids) - 1 + t, tok_id].item() for t, tok_id in enumerate(form)))
        out[c] = math.log(total)
    return out


def test_batched_verdict_logprobs_equal_one_prompt_at_a_time(random_lm):
    model, tok = random_lm
    responses = ["Paris.", "It is Nowhere, as everyone knows, far away beyond the hills.", "Paris is the capital."]
    queries = item_queries(default_rubric(), [{"role": "user", "content": "Capital of France?"}], responses,
                           criteria=True)
    backend = LocalBackend(model, tok, batch_size=4)  # padded batches of prompts of different lengths
    got = backend.answer(queries)
    assert len(got) == 6 + 15 and backend.stats["verdicts from log-probabilities"] == 21
    for i in (0, 1, 5, 6, 20):
        want = one_at_a_time(model, tok, queries[i])
        assert got[i].keys() == want.keys()
        for c in want:
            assert got[i][c] == pytest.approx(want[c], abs=2e-4)
    assert len({round(g["A"], 3) for g in got[:6]}) == 6  # the verdicts do depend on the prompt


def test_multi_token_verdicts_and_truncation(tiny):
    _, model, tok = tiny
    q = Query([{"role": "user", "content": "Pick one: Zqxj or Wvkq?"}], ("Zqxj", "Wvkq"))
    assert all(len(tok.encode(c, add_special_tokens=False)) > 1 for c in q.choices)
    backend = LocalBackend(model, tok, batch_size=2)
    got = backend.answer([q, q])
    want = one_at_a_time(model, tok, q)
    assert got[0] == pytest.approx(want, abs=2e-4) and got[1] == pytest.approx(want, abs=2e-4)
    short = LocalBackend(model, tok, max_length=40)
    pair = item_queries(default_rubric(), [{"role": "user", "content": "q"}], ["a", "b"], criteria=False)
    out = short.answer(pair)
    assert short.stats["truncated prompts"] == 2 and all(math.isfinite(v) for o in out for v in o.values())


def test_judge_cli_with_a_local_model(tiny, tmp_path, capsys):
    path = tiny[0]
    db = tmp_path / "fb.db"
    store = Store.open(str(db))
    store.add_batch("b", make_items(n=2, k=3))
    code, out, err = run(["judge", "b", "--model", path, "--db", db, "--name", "tiny", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["judge"] == "ai:tiny" and summary["created"] == 2 and summary["pairs"] == 6
    assert summary["backend: verdicts from log-probabilities"] == summary["queries"] == 2 * (6 + 15)
    # the model was taught to say A whatever it is shown: a pure position bias, cancelled by the swap
    assert summary["mean P(A)"] > 0.7 and summary["tied pairs"] == 6
    labels = store.labels(["b"])
    assert [r.source for r in labels] == ["ai:tiny", "ai:tiny"]
    assert all(r.ties == [[0, 1, 2]] and r.scores is not None for r in labels)
    prefs = tmp_path / "prefs.jsonl"
    code, _, err = run(["label", "export", "b", "--out", prefs, "--db", db], capsys)
    assert code == 0, err
    records = list(read_feedback(prefs))
    assert {r.source for r in records if r.type == "ranking"} == {"ai:tiny"}
    assert sum(r.type == "likert" for r in records) == 6
    code, out, _ = run(["judge", "b", "--model", "./not/loaded", "--db", db, "--name", "tiny", "--json"], capsys)
    assert code == 0 and json.loads(out)["summary"]["prompts judged"] == 0  # nothing pending: no model needed


def test_judge_cli_reports_agreement_with_simulated_labelers(tiny, tmp_path, capsys):
    db = tmp_path / "fb.db"
    Store.open(str(db)).add_batch("w", world_like_items(3))
    from lmforge.feedback.simulate import simulate

    from .conftest import FakeLabeler

    simulate(Store.open(str(db)), "w", labelers=2, make_labeler=lambda i: FakeLabeler(None, seed=i))
    code, out, err = run(["judge", "w", "--model", tiny[0], "--db", db, "--no-criteria"], capsys)
    assert code == 0, err
    assert "agreement of ai:judge with the other labelers of w:" in out
    assert "vs sim-1" in out and "vs all simulated (2)" in out and "prompts=3" in out
    code, out, _ = run(["label", "stats", "w", "--json", "--db", db], capsys)
    progress = {p["labeler"]: (p["kind"], p["done"]) for p in json.loads(out)["progress"]}
    assert progress == {"judge": ("ai", 3), "sim-1": ("simulated", 3), "sim-2": ("simulated", 3)}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["nope", "--model", "m"], "no batch 'nope' (batches: b)"),
    (["b", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--retries", "0"], "failed after 1 attempt(s): "
                                                                                "ConnectError"),
    (["b", "--endpoint", "127.0.0.1:1"], "must be an http(s) URL"),
    (["b"], "give exactly one judge"),
    (["b", "--model", "m", "--endpoint", "http://x"], "give exactly one judge"),
    (["b", "--model", "m", "--rubric", "missing.yaml"], "rubric file not found"),
    (["b", "--model", "m", "--name", "ana"], "user 'ana' exists and is of kind 'human'"),
    (["b", "--model", "m", "--name", "bad name!"], "judge names are"),
    (["b", "--model", "./no/such/model"], "model path not found"),
])
def test_bad_input_is_one_line_exit_2_and_stores_nothing(tmp_path, capsys, args, message):
    db = tmp_path / "fb.db"
    store = Store.open(str(db), hasher=FAST_HASHER)
    store.add_batch("b", make_items(n=2))
    store.create_user("ana", password="correct horse")
    code, _, err = run(["judge", *args, "--db", db], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert {u.name for u in store.users()} == {"ana"} and store.labels() == []
