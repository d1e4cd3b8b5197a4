"""`lmforge judge BATCH --model RM_FOLDER`: a trained reward model of either head labels a batch with what it was
trained on (its saved verdict), through the scorer `rm score` and RL use — rankings, ties, criterion scores."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from lmforge.feedback.batchfile import BatchItem
from lmforge.feedback.judge.reward_judge import likert
from lmforge.feedback.store import Store
from lmforge.models.reward_scores import RewardScorer

from .conftest import bad, good, prompt
from .test_stage import cli, rm_args

FIVE = "[accuracy, relevance, coherence, harmlessness, honesty]"


def items(n: int = 3) -> list[BatchItem]:
    rng = random.Random(7)
    out = []
    for i in range(n):  # the bad answer first, so a judge that keeps the input order is wrong
        out.append(BatchItem(id=f"q{i}", prompt=[{"role": "user", "content": prompt(5000 + i)}],
                             responses=[bad(rng), good(rng) + " " + bad(rng, 3), good(rng, 8)], model="t",
                             sampling={}, meta={}))
    return out


def judge(rm: Path, db: Path, *extra: str, capsys) -> tuple[int, dict, str]:
    capsys.readouterr()  # the training run's output
    code = cli(["judge", "b", "--model", str(rm), "--db", str(db), "--name", "rm", "--json", *extra])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else {}), out.err


def batch(tmp_path: Path, name: str) -> tuple[Path, Store]:
    db = tmp_path / f"{name}.db"
    store = Store.open(str(db))
    store.add_batch("b", items())
    return db, store


def test_a_generative_verifier_with_five_criteria_ranks_and_scores(tiny_lm, mixed_files, tmp_path, capsys):
    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "crit", "epochs=3", "model.head=generative",
                       "model.verdict.mode=criteria", f"model.verdict.criteria={FIVE}")) == 0
    rm = tmp_path / "crit" / "final"
    db, store = batch(tmp_path, "crit")
    code, out, err = judge(rm, db, "--tie-margin", "0", capsys=capsys)  # no ties: the order is the scores'

    assert code == 0, err
    summary = out["summary"]
    assert summary["judge"] == "ai:rm" and summary["created"] == 3 and summary["pairs"] == 9
    assert "queries" not in summary and summary["backend: responses scored"] == 9
    scorer = RewardScorer(rm)
    labels = store.labels(["b"])
    assert sorted(r.item_key for r in labels) == ["q0", "q1", "q2"]
    for label in labels:
        s = scorer.score([label.prompt] * 3, label.responses)
        want = sorted(range(3), key=lambda i: -float(s[i, 0]))
        assert label.ranking == want and label.ranking[-1] == 0  # the all-bad answer last
        # each criterion's score is its own verdict's P(yes) on the 1-7 scale
        for i in range(3):
            for c, col in zip(scorer.names[1:], range(1, 6)):
                assert label.scores[i][c] == likert(float(s[i, col]))
        p01 = 1 / (1 + math.exp(-float(s[0, 0] - s[1, 0])))
        assert f"A>B {p01:.2f}" in label.comment and "verdict criteria" in label.comment


def test_a_scalar_reward_model_ranks_without_scores(tiny_lm, mixed_files, tmp_path, capsys):
    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "scalar", "epochs=2")) == 0
    db, store = batch(tmp_path, "scalar")
    code, out, err = judge(tmp_path / "scalar" / "final", db, capsys=capsys)
    assert code == 0, err
    assert out["summary"]["unscored"] == 3 * 3 * 5  # a scalar head has no verdict probability to read
    assert "order-consistent share" not in out["summary"]  # one score per response: no order to agree on
    labels = store.labels(["b"])
    assert len(labels) == 3 and all(r.scores is None and r.ranking[0] != 0 for r in labels)
    code, _, err = judge(tmp_path / "scalar" / "final", db, "--rubric", str(train), capsys=capsys)
    assert code == 2 and "--rubric is for a chat model" in err


def test_a_pairwise_verifier_judges_both_orders(tiny_lm, mixed_files, tmp_path, capsys):
    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "pw", "epochs=4", "model.head=generative",
                       "model.verdict.mode=pairwise", "model.max_length=96")) == 0
    rm = tmp_path / "pw" / "final"
    db, store = batch(tmp_path, "pw")
    code, out, err = judge(rm, db, "--no-criteria", "--tie-margin", "0", capsys=capsys)
    assert code == 0, err
    assert out["summary"]["backend: pairwise verdicts"] == 3 * 6
    scorer = RewardScorer(rm)
    consistent = 0
    for label in store.labels(["b"]):
        L = scorer.ordered_verdicts(label.prompt, label.responses)
        consistent += sum(float(L[i, j]) * float(L[j, i]) < 0 for i in range(3) for j in range(i + 1, 3))
        M = scorer.preferences(label.prompt, label.responses)
        wins = {(i, j): torch.sigmoid(M[i, j]).item() for i in range(3) for j in range(3) if i < j}
        copeland = [sum(float((wins[(min(i, j), max(i, j))] > 0.5) == (i < j)) for j in range(3) if j != i)
                    for i in range(3)]
        assert label.ranking[0] == max(range(3), key=lambda i: copeland[i]) and label.ranking[-1] == 0
        assert label.scores is None
    # both orders of a pair pick the same response: the share, as chat judges report it (none for pointwise)
    assert out["summary"]["order-consistent share"] == round(consistent / 9, 4)


@pytest.mark.parametrize("value,want", [(-50.0, 1), (0.0, 4), (50.0, 7), (math.log(3), 6)])
def test_likert_maps_a_verdict_probability_onto_one_to_seven(value, want):
    assert likert(value) == want  # 1 + 6 * 0.75 = 5.5 -> 6


def test_each_criterion_score_reads_its_own_column():
    """A stand-in scorer whose columns all differ: criterion c's score is the likert of column c, nothing else."""
    from types import SimpleNamespace

    from lmforge.feedback.judge.reward_judge import RewardModelJudge

    names = ["reward", "honesty", "accuracy", "relevance", "coherence", "harmlessness"]
    table = torch.tensor([[2.0, -3.0, 3.0, -1.0, 1.0, 0.0], [-2.0, 3.0, -3.0, 1.0, -1.0, 0.4]])
    verdict = SimpleNamespace(mode="criteria", question="q?")
    scorer = SimpleNamespace(verdict=verdict, names=names, pairwise=False, truncated=0,
                             score=lambda prompts, responses, batch_size: table[:len(responses)])
    [j] = RewardModelJudge(scorer, name="fake").judge_items([([{"role": "user", "content": "x"}], ["a", "b"])],
                                                            True, 0.0, "")
    assert j.label.ranking == [0, 1]
    assert j.label.scores == [{c: likert(float(table[i, names.index(c)])) for c in names[1:]} for i in range(2)]
    assert j.label.scores[0]["honesty"] == 1 and j.label.scores[0]["accuracy"] == 7


def test_a_pointwise_model_scores_every_item_in_one_pass():
    """All items' responses go to the scorer in one call (full batches across items), and each item's wins
    read its own rows: the scores are the response's length here, so longer beats shorter in every item."""
    from types import SimpleNamespace

    from lmforge.feedback.judge.reward_judge import RewardModelJudge

    calls = []

    def score(prompts, responses, batch_size):
        calls.append((len(prompts), prompts[0][0]["content"], prompts[-1][0]["content"]))
        return torch.tensor([[float(len(r))] for r in responses])

    scorer = SimpleNamespace(verdict=None, names=["reward"], pairwise=False, truncated=0, score=score)
    items = [([{"role": "user", "content": f"q{n}"}], ["x" * (n + 2), "y" * (n + 4), "z"]) for n in range(3)]
    out = RewardModelJudge(scorer, name="fake").judge_items(items, False, 0.0, "")
    assert calls == [(9, "q0", "q2")]
    assert [j.label.ranking for j in out] == [[1, 0, 2], [1, 0, 2], [1, 0, 2]]
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out[0].wins[(0, 2)] == pytest.approx(sigmoid(2 - 1)) and out[2].wins[(0, 2)] == pytest.approx(sigmoid(3))
    assert out[1].wins[(0, 1)] == pytest.approx(sigmoid(3 - 5))
