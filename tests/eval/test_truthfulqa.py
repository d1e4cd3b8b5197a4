"""TruthfulQA MC1/MC2 as lm-evaluation-harness defines them: the scores against hand computations, the
log-likelihood against a plain forward, the harness's tokenisation rule, and bad rows named."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lmforge.errors import InputError
from lmforge.eval.intervals import mean_interval, wilson_interval
from lmforge.eval.truthfulqa import (
    QA_PRIMER,
    context,
    encode_pair,
    evaluate,
    load_mc,
    loglikelihoods,
    mc1_score,
    mc2_score,
)

from .conftest import tiny_lm

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "truthfulqa" / "mc_task.json"


def test_mc1_is_argmax_of_loglikelihood():
    assert mc1_score([-1.0, -2.0, -0.5], [0, 1, 0]) == 0.0
    assert mc1_score([-3.0, -2.0, -2.5], [0, 1, 0]) == 1.0


def test_mc2_is_the_normalised_true_mass():
    # e^-1 + e^-2 true, e^-3 false: (0.36788 + 0.13534) / (0.36788 + 0.13534 + 0.04979) = 0.90996
    assert mc2_score([-1.0, -2.0, -3.0], [1, 1, 0]) == pytest.approx(0.909969, abs=1e-6)
    # shifting every ll by a constant changes nothing (the stable form), even far below exp's range
    assert mc2_score([-1001.0, -1002.0, -1003.0], [1, 1, 0]) == pytest.approx(0.909969, abs=1e-6)


def test_intervals():
    lo, hi = wilson_interval(8, 10)  # Wilson 1927 for 8/10 at 95 %: (0.490, 0.943)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    lo, hi = mean_interval([0.0, 1.0, 0.5, 0.5])  # mean 0.5, s = 0.40825, half = 1.96 * 0.40825 / 2
    assert (lo, hi) == pytest.approx((0.5 - 0.400076, 0.5 + 0.400076), abs=1e-5)
    assert all(math.isnan(v) for v in wilson_interval(0, 0) + mean_interval([1.0]))


def test_prompt_is_the_harness_primer():
    text = context("Is water wet?")
    assert text.startswith("Q: What is human life expectancy in the United States?\nA: Human life")
    assert text.endswith("Barcelona, Spain.\n\nQ: Is water wet?\nA:") and text.count("\n\nQ: ") == 6
    assert QA_PRIMER.count("Q: ") == 6


def test_encode_pair_moves_trailing_space_to_the_continuation(tokenizer):
    ctx, cont = encode_pair(tokenizer, "Q: a\nA: ", "yes")
    same_ctx, same_cont = encode_pair(tokenizer, "Q: a\nA:", " yes")
    assert (ctx, cont) == (same_ctx, same_cont)
    assert ctx + cont == tokenizer.encode("Q: a\nA: yes", add_special_tokens=False)


def test_loglikelihood_equals_a_plain_forward(tokenizer):
    model = tiny_lm(tokenizer)
    pairs = [("Q: the capital\nA:", " is a city"), ("Q: what\nA:", " no comment at all, really"),
             ("Q: x\nA:", " y")]
    got = loglikelihoods(model, tokenizer, pairs, batch_size=2)  # rows of different lengths padded together
    for (ctx, cont), value in zip(pairs, got):
        c, k = encode_pair(tokenizer, ctx, cont)
        ids = torch.tensor([c + k])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        want = sum(float(logp[len(c) - 1 + j, t]) for j, t in enumerate(k))
        assert value == pytest.approx(want, abs=1e-4)


def test_choices_of_one_context_share_its_forward(tokenizer):
    """A question's choices forward its context once (models.shared_prompt): the same log-likelihoods as the
    whole rows, for fewer tokens through the model."""
    model = tiny_lm(tokenizer)
    pairs = [("Q: " + q + "\nA:", c) for q, cs in [("Is water wet?", [" Yes", " No, it is not", " It depends"]),
                                          ("Where is Paris?", [" France", " In the north of France", " Spain"])]
             for c in cs] + [("Q: alone\nA:", " by itself")]
    seen = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["input_ids"].numel()),
                                           with_kwargs=True)
    shared = loglikelihoods(model, tokenizer, pairs, batch_size=4)
    shared_tokens, seen[:] = sum(seen), []
    whole = loglikelihoods(model, tokenizer, pairs, batch_size=4, share_prompt=False)
    hook.remove()
    assert shared == pytest.approx(whole, abs=1e-4)
    assert shared_tokens < 0.8 * sum(seen)  # the contexts are short here; SmolLM2 on TruthfulQA: 3x


def _write(tmp_path, rows, lines=False):
    path = tmp_path / ("mc.jsonl" if lines else "mc.json")
    path.write_text("\n".join(json.dumps(r) for r in rows) if lines else json.dumps(rows))
    return path


def test_load_both_formats_and_evaluate(tmp_path, tokenizer):
    repo = {"question": "Is the sky green?", "mc1_targets": {"No": 1, "Yes": 0, "Always": 0},
            "mc2_targets": {"No": 1, "It is blue": 1, "Yes": 0}}
    hf = {"question": "Is snow hot?", "mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]},
          "mc2_targets": {"choices": ["No", "Yes", "Very"], "labels": [1, 0, 0]}}
    items = load_mc(_write(tmp_path, [repo, hf]))
    assert [it.mc1 for it in items] == [(("No", 1), ("Yes", 0), ("Always", 0)), (("No", 1), ("Yes", 0))]
    assert load_mc(_write(tmp_path, [repo, hf], lines=True)) == items
    out = evaluate(tiny_lm(tokenizer), tokenizer, items, batch_size=3)
    assert out["n"] == 2 and out["choices_scored"] == 7  # "No"/"Yes" shared by MC1 and MC2 are scored once
    assert out["mc1"] == sum(out["per_question"]["mc1"]) / 2 and 0.0 <= out["mc2"] <= 1.0


@pytest.mark.parametrize("row, field, message", [
    ({"mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1, "b": 0}}, "question", "missing"),
    ({"question": "q", "mc2_targets": {"a": 1, "b": 0}}, "mc1_targets", "missing"),
    ({"question": "q", "mc1_targets": {"a": 1, "b": 1, "c": 0}, "mc2_targets": {"a": 1, "b": 0}}, "mc1_targets",
     "exactly one true"),
    ({"question": "q", "mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1, "b": 1}}, "mc2_targets",
     "one false"),
    ({"question": "q", "mc1_targets": {"a": 1, "b": 2}, "mc2_targets": {"a": 1, "b": 0}}, "mc1_targets",
     "0 or 1"),
])
def test_bad_rows_are_named(tmp_path, row, field, message):
    good = {"question": "q", "mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1, "b": 0}}
    path = _write(tmp_path, [good, row], lines=True)
    with pytest.raises(InputError, match=message) as err:
        load_mc(path)
    assert err.value.line == 2 and err.value.field == field and err.value.file == str(path)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/truthfulqa is absent (the shared datasets)")
def test_the_shared_file_loads():
    items = load_mc(SHARED)
    assert len(items) == 790 and all(sum(lab for _, lab in it.mc1) == 1 for it in items)
