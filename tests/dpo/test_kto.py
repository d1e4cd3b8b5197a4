"""KTO in ``lmforge dpo``: unpaired good/bad examples, the batch's mismatched rows as z0, both labels required."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

from conftest import run_cli
from lmforge.errors import InputError
from lmforge.stages.dpo import LossSection, dpo
from lmforge.stages.dpo_loss import make_loss

from .conftest import BAD, GOOD, TOPICS, records, words, write_jsonl
from .test_stage import _cfg


def binary_records(n: int, seed: int = 0, good_only: bool = False) -> list[dict]:
    """``lmforge label export``'s good/bad records: one response per prompt, labelled."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        good = good_only or i % 2 == 0
        out.append({"type": "binary", "prompt": f"Tell me about {TOPICS[i % 10]} number {i}.",
                    "response": words(rng, GOOD if good else BAD), "label": good})
    return out


def test_kto_learns_from_good_and_bad_labels(tmp_path, tiny_lm):
    files = (write_jsonl(tmp_path / "train.jsonl", binary_records(60)),
             write_jsonl(tmp_path / "eval.jsonl", records(8, seed=1, rankings=False)))  # pairs split in two
    s = dpo(_cfg(tmp_path, tiny_lm, files, loss__name="kto", train__steps=16))
    assert s["train_desirable"] == 30 and s["train_undesirable"] == 30 and s["heldout_pairs"] == 16
    assert s["heldout_loss_before"] == pytest.approx(0.5, abs=1e-6)  # policy = reference: 1 - σ(0)
    assert s["heldout_loss_after"] < s["heldout_loss_before"] - 0.02
    assert s["heldout_accuracy_after"] >= 0.8
    train = [x for x in map(json.loads, (tmp_path / "runs/a/metrics.jsonl").read_text().splitlines())
             if x.get("split") == "train"]
    assert {"reward_desirable", "reward_undesirable", "kl", "logp_drift"} <= set(train[-1])
    assert train[-1]["reward_desirable"] > train[-1]["reward_undesirable"]


def test_kto_takes_pairs_and_rankings_split_into_good_and_bad(tmp_path, tiny_lm, pref_files):
    s = dpo(_cfg(tmp_path, tiny_lm, pref_files, loss__name="kto", data__ranking_pairs="best_vs_rest",
                 train__steps=8))
    assert s["train_desirable"] > 0 and s["train_undesirable"] > 0
    assert s["heldout_loss_after"] < s["heldout_loss_before"]


def test_kto_without_both_labels_is_a_clear_error(tmp_path, tiny_lm):
    only_good = write_jsonl(tmp_path / "good.jsonl", binary_records(10, good_only=True))
    files = (only_good, only_good)
    with pytest.raises(InputError, match="both desirable and undesirable.*10 desirable and 0 undesirable"):
        dpo(_cfg(tmp_path, tiny_lm, files, loss__name="kto"))
    assert not (tmp_path / "runs/a").exists()  # nothing half-written
    proc = run_cli(["dpo", f"model.path={tiny_lm}", f"run.root={tmp_path / 'runs'}", "loss.name=kto",
                    f"data.train=[{only_good}]"], cwd=tmp_path, check=False)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "data.train" in errors[0]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_kto_loss_by_hand(monkeypatch):
    import lmforge.stages.dpo_loss as stage

    # 3 examples (0 and 2 desirable), then their mismatched rows
    logp = torch.tensor([-2.0, -6.0, -3.0, -4.0, -5.0, -1.0], dtype=torch.float64)
    ref = torch.tensor([[-3.0, -4.5], [-5.0, -5.0], [-3.0, -1.5]], dtype=torch.float64)
    monkeypatch.setattr(stage, "sequence_logprobs", lambda model, batch, chunk: (logp, torch.ones(6)))
    batch = {"index": torch.tensor([0, 1, 2]), "weight": torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64),
             "tokens": 12}
    desirable = torch.tensor([True, False, True])
    out = make_loss(LossSection(name="kto", beta=0.5, desirable_weight=1.5, undesirable_weight=0.8), ref, None,
                    desirable)(None, batch)
    z0 = max(0.0, ((-4 + 4.5) + (-5 + 5) + (-1 + 1.5)) / 3)  # 1/3
    r = [1.0, -1.0, 0.0]
    want = 1.0 * 1.5 * (1 - sig(0.5 * (r[0] - z0))) + 2.0 * 0.8 * (1 - sig(0.5 * (z0 - r[1]))) + \
        1.0 * 1.5 * (1 - sig(0.5 * (r[2] - z0)))
    assert out.loss.item() == pytest.approx(want) and out.count == pytest.approx(4.0)
    assert float(out.metrics["kl"]) / 4 == pytest.approx(z0)
    assert float(out.metrics["reward_desirable"]) / 4 == pytest.approx(0.5 * (r[0] + r[2]) / 2)
    assert float(out.metrics["reward_undesirable"]) / 4 == pytest.approx(0.5 * r[1])
