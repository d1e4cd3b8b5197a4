"""Per-criterion verdicts (``model.verdict.mode: criteria``): one question per criterion from one causal LM, each
read off the plain LM's next-token logits after the same prompt + response; the reward their weighted mean;
the response forwarded once for all of its verdicts when packed (the same scores and gradients as padded)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.data.preference import Binary, Likert
from lmforge.data.reward_data import DataReport, Group, collate_groups, likert_verdicts, tokenize_groups
from lmforge.data.reward_encode import collate
from lmforge.data.reward_pack import pack
from lmforge.errors import InputError
from lmforge.models.reward import RewardModelSection, create_reward_model
from lmforge.models.reward_scores import check_sharing, forward_scores, generative_scores
from lmforge.models.verdict import VerdictSection, build_criteria_verdict, combine_criteria

from .conftest import write_jsonl
from .test_stage import cli, rm_args

RESPONSES = ["sure here is the answer.", "no wrong bad nonsense rude broken no.", "clearly correct " * 6]
SECTION = VerdictSection(mode="criteria", questions={"accuracy": "Is it right?", "honesty": "Is it honest?"},
                         weights={"accuracy": 3.0, "honesty": 1.0})


def test_combine_criteria_by_hand() -> None:
    scores = torch.tensor([[2.0, -1.0], [0.0, 4.0]])
    w = torch.tensor([0.75, 0.25])
    # 0.75 * 2 + 0.25 * -1 = 1.25; 0.75 * 0 + 0.25 * 4 = 1.0
    torch.testing.assert_close(combine_criteria(scores, w), torch.tensor([1.25, 1.0]))


def test_criteria_verdict_template_and_weights(tiny_lm: Path) -> None:
    from lmforge.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_lm))
    v = build_criteria_verdict(tok, "chat", SECTION, ["accuracy", "honesty"])
    assert v.mode == "criteria" and v.names == ["reward", "accuracy", "honesty"] and v.suffix_ids == []
    assert [c["weight"] for c in v.criteria] == [0.75, 0.25]
    assert "Is it right?" in v.criteria[0]["suffix"] and v.branches == [c["suffix_ids"] for c in v.criteria]
    other = build_criteria_verdict(tok, "transcript", VerdictSection(mode="criteria"), ["accuracy", "style"])
    assert [c["weight"] for c in other.criteria] == [0.5, 0.5]
    assert other.criteria[1]["question"] == 'Is this response good on the criterion "style"? Answer Yes or No.'
    with pytest.raises(InputError, match="weights"):
        build_criteria_verdict(tok, "chat", VerdictSection(mode="criteria", weights={"tone": 1.0}), ["accuracy"])


@pytest.fixture(scope="module")
def crit(tiny_lm: Path):
    from lmforge.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_lm))
    verdict = build_criteria_verdict(tok, "chat", SECTION, ["accuracy", "honesty"], likelihood_weight=0.5)
    torch.manual_seed(0)
    model, tok, _ = create_reward_model(RewardModelSection(path=str(tiny_lm), head="generative"), [], verdict)
    return model, tok, verdict


def groups_of(tok, verdict, prompts=3) -> list[Group]:
    out = [Group(prompt=[{"role": "user", "content": f"Tell me about cats number {i}." + " more" * (3 * i)}],
                 responses=[r + " sure" * i for r in RESPONSES]) for i in range(prompts)]
    tokenize_groups(out, tok, "chat", 128, DataReport(), None, verdict.branches)
    return out


def test_each_criterion_is_the_plain_lm_log_odds_and_the_reward_their_weighted_mean(crit) -> None:
    model, tok, verdict = crit
    model.eval()
    groups = groups_of(tok, verdict)
    e = groups[1].encoded[2]
    with torch.no_grad():
        got = forward_scores(model, collate_groups(groups, tok.pad_token_id, 3))
        lp = torch.log_softmax(model(torch.tensor([e.input_ids])).logits[0], -1)
        mean = torch.stack([lp[t, e.input_ids[t + 1]] for t in range(e.prompt_len, len(e.input_ids) - 1)]).mean()
        want = []
        for c in verdict.criteria:  # prompt + response + this criterion's question, read at its last token
            z = torch.log_softmax(model(torch.tensor([e.input_ids + c["suffix_ids"]])).logits[0, -1], -1)
            want.append(z[c["yes_id"]] - z[c["no_id"]] + 0.5 * mean)
    assert got.shape == (9, 3)
    torch.testing.assert_close(got[3 + 2, 1:], torch.stack(want), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[3 + 2, 0], 0.75 * want[0] + 0.25 * want[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row_tokens", [16, 1000])
def test_packed_criteria_scores_and_gradients_equal_padded(crit, row_tokens: int) -> None:
    model, tok, verdict = crit
    model.train()
    groups = groups_of(tok, verdict)
    out = []
    for rows, chunk in ((None, None), (row_tokens, 64)):
        batch = collate_groups(groups, tok.pad_token_id, 3, rows)
        model.zero_grad(set_to_none=True)
        s, nll, n = generative_scores(model, batch, chunk, lm_loss=True)
        (s * torch.linspace(-1, 1, s.numel()).view_as(s)).sum().backward()
        out.append((s.detach(), float(nll.detach()), n, {k: p.grad.clone() for k, p in model.named_parameters()
                                               if p.grad is not None}))
    (s0, nll0, n0, g0), (s1, nll1, n1, g1) = out
    torch.testing.assert_close(s0, s1, rtol=1e-4, atol=1e-5)
    # each response's LM targets counted once, not once per criterion
    assert n0 == n1 == sum(len(e.input_ids) - e.prompt_len - 1 for g in groups for e in g.encoded)
    assert nll1 == pytest.approx(nll0, rel=1e-5)
    for k in g0:
        torch.testing.assert_close(g0[k], g1[k], rtol=1e-4, atol=1e-5)
    ok, why = check_sharing(model, groups, tok.pad_token_id, row_tokens)
    assert ok, why


def test_packing_forwards_the_response_once_for_all_verdicts(crit) -> None:
    _, tok, verdict = crit
    groups = groups_of(tok, verdict)
    rows = [e for g in groups for e in g.encoded]
    packed = pack([g.encoded for g in groups], tok.pad_token_id, 10_000)
    padded = collate(rows, tok.pad_token_id)
    suffixes = sum(len(b) for b in verdict.branches)
    prompts = sum(g.encoded[0].prompt_len for g in groups)
    # packed: each prompt once, each response once, each suffix once per response
    assert packed["tokens"] == prompts + sum(len(e.input_ids) - e.prompt_len + suffixes for e in rows)
    # padded: a row per (response, criterion)
    assert padded["input_ids"].shape[0] == 2 * len(rows)
    assert packed["sequence_tokens"] == int(padded["attention_mask"].sum())
    assert packed["branch_of"].tolist() == padded["branch_of"].tolist() == [i for i in range(9) for _ in "ab"]


def test_likert_per_criterion_verdicts() -> None:
    recs = [Likert(prompt="q", response="a", scores={"accuracy": 6, "honesty": 2, "tone": 7}, scale=(1, 7))]
    rep = DataReport()
    out = likert_verdicts(recs, 0.5, None, rep, ["accuracy", "honesty"], overall=True)
    # accuracy 6 >= 4 yes, honesty 2 < 4 no, tone not a criterion; the mean 5 >= 4: an overall yes
    assert [(r.criterion, r.label) for r in out] == [("accuracy", True), ("honesty", False), (None, True)]
    assert all(isinstance(r, Binary) for r in out)
    only = likert_verdicts(recs, 0.5, None, rep, ["accuracy"], overall=False)
    assert [(r.criterion, r.label) for r in only] == [("accuracy", True)]


def test_criteria_stage_trains_reports_each_criterion_and_scores(tiny_lm: Path, mixed_files, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from lmforge.models.reward_scores import RewardScorer

    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "crit", "epochs=3", "model.head=generative",
                       "model.verdict.mode=criteria", "model.verdict.questions.accuracy=Is it right?",
                       "model.verdict.questions.honesty=Is it honest?")) == 0
    run = tmp_path / "crit"
    summary = json.loads((run / "summary.json").read_text())
    # the fixtures' Likert ratings name accuracy and honesty: those are the criteria asked
    assert summary["criteria"] == ["accuracy", "honesty"] and summary["prompt_sharing"].startswith("on")
    assert set(summary["accuracy_by_criterion"]) == {"overall", "accuracy", "honesty"}
    assert summary["heldout_pair_accuracy"] >= 0.9, summary
    assert summary["data"]["likert accuracy as yes verdict"] == 12
    assert set(summary["criterion_heads_on_overall_pairs"]) == {"accuracy", "honesty"}  # each verdict alone
    side = json.loads((run / "final" / "reward.json").read_text())
    assert side["verdict"]["mode"] == "criteria" and [c["weight"] for c in side["verdict"]["criteria"]] == [0.5, 0.5]
    AutoModelForCausalLM.from_pretrained(run / "final")  # a plain causal LM
    scorer = RewardScorer(run / "final")
    s = scorer.score(["Tell me about cats number 5001."] * 2, ["no wrong rude nonsense.", "clearly helpful correct."])
    assert s.shape == (2, 3) and scorer.names == ["reward", "accuracy", "honesty"]
    torch.testing.assert_close(s[:, 0], s[:, 1:].mean(-1))
    assert s[1, 0] > s[0, 0]
    inp = write_jsonl(tmp_path / "score.jsonl", [{"prompt": "Tell me about cats number 5001.",
                                                  "response": "clearly helpful correct answer."}])
    assert cli(["rm", "score", str(run / "final"), str(inp), "--out", str(tmp_path / "out.jsonl")]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert set(row["scores"]) == {"reward", "accuracy", "honesty"}


def test_branch_mask_by_hand() -> None:
    from lmforge.data.reward_pack import prefix_mask

    # one segment: prompt p0 p1 | response r (part 1) | branch b1 (sub 1) | branch b2 (sub 2)
    seg = torch.tensor([[0, 0, 0, 0, 0]])
    part = torch.tensor([[0, 0, 1, 1, 1]])
    sub = torch.tensor([[0, 0, 0, 1, 2]])
    m = prefix_mask(seg, part, sub)[0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0],
                 [1, 1, 0, 0, 0],
                 [1, 1, 1, 0, 0],
                 [1, 1, 1, 1, 0],   # b1 sees the prompt, the response and itself
                 [1, 1, 1, 0, 1]]   # b2 the same, never b1
