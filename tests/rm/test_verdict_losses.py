"""Generative-verifier pieces that are pure functions: the log-odds, the yes/no losses, the LM loss's targets,
Likert thresholds and the knowledge / format split — each against numbers computed by hand."""
from __future__ import annotations

import math

import torch

from lmforge.algos.reward_losses import lm_nll, pair_verdicts, ranking_verdicts
from lmforge.data.preference import Binary, Likert, Pair
from lmforge.data.reward_data import DataReport, Group, likert_verdicts
from lmforge.data.reward_encode import Encoded, lm_targets
from lmforge.eval.reward_eval import eval_pairs, pair_accuracy, pair_category
from lmforge.models.verdict import log_odds, readout


def sp(x: float) -> float:  # -log σ(-x) = log(1 + e^x)
    return math.log1p(math.exp(x))


def test_log_odds_is_the_difference_of_log_probabilities() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, 3.0]])
    # by hand: z_yes - z_no = 2.0 - (-1.0) = 3.0; the normaliser cancels
    assert float(log_odds(logits, 0, 2)) == 3.0
    lp = torch.log_softmax(logits, -1)
    torch.testing.assert_close(log_odds(logits, 0, 2), lp[:, 0] - lp[:, 2])


def test_readout_uses_two_rows_of_the_output_layer() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 7, bias=True)
    h = torch.randn(3, 4)
    full = head(h)
    torch.testing.assert_close(readout(h, head, 5, 1), full[:, 5] - full[:, 1])
    nobias = torch.nn.Linear(4, 7, bias=False)
    torch.testing.assert_close(readout(h, nobias, 0, 6), nobias(h)[:, 0] - nobias(h)[:, 6])


def test_pair_verdicts_by_hand() -> None:
    c, r = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.0])
    # pair 0: 1/2 [log(1+e^-1) + log(1+e^0.5)]; pair 1: 1/2 [log(1+e^2) + log 2]
    want = torch.tensor([0.5 * (sp(-1.0) + sp(0.5)), 0.5 * (sp(2.0) + math.log(2))])
    torch.testing.assert_close(pair_verdicts(c, r), want)


def test_ranking_verdicts_by_hand_with_a_tie_and_padding() -> None:
    # ranking 0: three responses, rewards 2, 0, -1 in rank order, no ties: pairs (0,1), (0,2), (1,2)
    # ranking 1: two real responses tied with each other + padding -> no comparable pair -> 0
    ranked = torch.tensor([[2.0, 0.0, -1.0], [1.0, 1.0, 0.0]])
    tie = torch.tensor([[0, 1, 2], [0, 0, -1]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    p01 = 0.5 * (sp(-2.0) + sp(0.0))
    p02 = 0.5 * (sp(-2.0) + sp(-1.0))
    p12 = 0.5 * (sp(0.0) + sp(-1.0))
    want = torch.tensor([(p01 + p02 + p12) / 3, 0.0])
    torch.testing.assert_close(ranking_verdicts(ranked, tie, valid), want)
    # K = 2 is exactly the pair loss
    two = ranking_verdicts(torch.tensor([[0.3, -0.4]]), torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(two, pair_verdicts(torch.tensor([0.3]), torch.tensor([-0.4])))


def test_lm_nll_is_a_token_mean() -> None:
    assert float(lm_nll(torch.tensor(6.0), 4)) == 1.5
    assert float(lm_nll(torch.tensor(0.0), 0)) == 0.0


def test_lm_targets_cover_the_response_only() -> None:
    # prompt 3 tokens, response 4 tokens (20..23), verdict suffix 2 tokens (90, 91)
    e = Encoded([1, 2, 3, 20, 21, 22, 23, 90, 91], None, False, prompt_len=3, suffix_len=2)
    # position t predicts t+1 while both are response tokens: 3->21, 4->22, 5->23
    assert lm_targets(e) == [-100, -100, -100, 21, 22, 23, -100, -100, -100]


def test_likert_threshold_turns_ratings_into_verdicts() -> None:
    prompt = "Tell me about cats."
    recs = [Likert(prompt=prompt, response="a", scores={"accuracy": 5, "honesty": 3}, scale=(1, 7)),  # mean 4
            Likert(prompt=prompt, response="b", scores={"accuracy": 4, "honesty": 3}, scale=(1, 7)),  # mean 3.5
            Pair(prompt=prompt, chosen="c", rejected="d")]
    rep = DataReport()
    out = likert_verdicts(recs, 0.5, None, rep)  # yes at mean >= 1 + 0.5 * 6 = 4
    assert [type(r) for r in out] == [Binary, Binary, Pair]
    assert [out[0].label, out[1].label] == [True, False]
    # weights: accuracy only -> 5 >= 4 and 4 >= 4 are both yes
    assert [r.label for r in likert_verdicts(recs[:2], 0.5, {"accuracy": 1.0}, rep)] == [True, True]
    assert rep.counts["likert as yes verdict"] == 3 and rep.counts["likert as no verdict"] == 1


def test_knowledge_and_format_pairs_are_split_by_candidate_type() -> None:
    assert pair_category("reference", "wrong_entity") == "knowledge"
    assert pair_category("accepts_premise", "refusal") == "knowledge"
    assert pair_category("reference", "hedge") == "format"
    assert pair_category("reference", None) is None
    g = Group(prompt=[{"role": "user", "content": "q"}], responses=["ref", "hedge", "wrong", "refusal"])
    g.rankings.append(([0, 1, 2, 3], [0, 1, 2, 3], 1.0, 0))
    g.sources["r0"], g.criteria["r0"] = "world", None
    g.types = {0: "reference", 1: "hedge", 2: "wrong_entity", 3: "refusal"}
    pairs = eval_pairs([g])
    cats = {(p.better, p.worse): p.category for p in pairs}
    assert cats == {(0, 1): "format", (0, 2): "knowledge", (0, 3): "format", (1, 2): "knowledge",
                    (1, 3): "format", (2, 3): "knowledge"}
    # rewards order everything right except the wrong entity above the hedge: knowledge 2/3, format 3/3
    scores = [torch.tensor([[3.0], [1.0], [2.0], [0.0]])]
    res = pair_accuracy(pairs, scores, [])
    assert res["heldout_pair_accuracy"] == 5 / 6
    assert res["knowledge_pair_accuracy"] == 2 / 3 and res["format_pair_accuracy"] == 1.0
    assert res["pairs_by_category"] == {"format": 3, "knowledge": 3}
