"""Pairwise verdicts (``model.verdict.mode: pairwise``): "which is better, A or B?" read off the plain causal LM,
both orders averaged, trained from comparisons in both positions, ranking K candidates (Copeland, Bradley–Terry)
— the pure pieces against hand computation, the packed and padded forwards against each other, the stage."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lmforge.algos.pairwise import both_orders, bradley_terry_fit, copeland, preference_matrix
from lmforge.algos.reward_losses import pair_verdicts
from lmforge.data.reward_data import DataReport, Group
from lmforge.errors import InputError
from lmforge.models.reward import RewardModelSection, create_reward_model
from lmforge.models.reward_scores import branch_scores, generative_scores
from lmforge.models.verdict_pairwise import PAIR_QUESTION, build_pairwise, pair_pieces
from lmforge.stages.rm_pairwise import collate_pairs, comparisons, make_pairwise_loss, pair_groups

from .conftest import write_jsonl
from .test_stage import cli, rm_args

RESPONSES = ["sure here is the answer.", "no wrong bad nonsense rude broken no.", "clearly correct " * 6]


def test_both_orders_and_the_preference_matrix_by_hand() -> None:
    # ℓ(a,b) = 2 (A = a wins), ℓ(b,a) = 1 (A = b wins, a bit): a over b by ½ (2 - 1) = 0.5
    assert float(both_orders(torch.tensor(2.0), torch.tensor(1.0))) == 0.5
    # a judge that always answers A by 3 has no preference left
    assert float(both_orders(torch.tensor(3.0), torch.tensor(3.0))) == 0.0
    L = torch.tensor([[float("nan"), 2.0, -1.0], [1.0, float("nan"), 0.0], [3.0, 4.0, float("nan")]])
    M = preference_matrix(L)
    # M01 = ½(2 - 1) = 0.5, M02 = ½(-1 - 3) = -2, M12 = ½(0 - 4) = -2; antisymmetric, 0 diagonal
    want = torch.tensor([[0.0, 0.5, -2.0], [-0.5, 0.0, -2.0], [2.0, 2.0, 0.0]])
    torch.testing.assert_close(M, want)
    # Copeland: 0 beats 1, loses to 2 -> 0; 1 loses both -> -2; 2 wins both -> 2
    torch.testing.assert_close(copeland(M), torch.tensor([0.0, -2.0, 2.0]))


def test_bradley_terry_fit_by_hand() -> None:
    # K = 2: the optimum has σ(s0 - s1) = σ(m), so s = (m/2, -m/2) (up to the tiny ridge)
    m = 1.2
    s = bradley_terry_fit(torch.tensor([[0.0, m], [-m, 0.0]]), prior=1e-8)
    torch.testing.assert_close(s, torch.tensor([0.6, -0.6]), atol=1e-5, rtol=0)
    # consistent verdicts M_ij = t_i - t_j are recovered (centred)
    t = torch.tensor([1.0, -0.5, 0.25, -0.75])
    s = bradley_terry_fit(t[:, None] - t[None, :], prior=1e-8)
    torch.testing.assert_close(s, t - t.mean(), atol=1e-4, rtol=0)
    # the gradient Σ_j (σ(M_ij) - σ(s_i - s_j)) - prior s_i vanishes at the fit
    M = torch.tensor([[0.0, 3.0, 0.5], [-3.0, 0.0, 1.0], [-0.5, -1.0, 0.0]])
    s = bradley_terry_fit(M, prior=0.01).double()
    off = 1 - torch.eye(3, dtype=torch.float64)
    g = ((torch.sigmoid(M.double()) - torch.sigmoid(s[:, None] - s[None, :])) * off).sum(-1) - 0.01 * s
    assert float(g.abs().max()) < 1e-4
    assert torch.argsort(s, descending=True).tolist() == [0, 1, 2]  # 0 > 1 by 3, 0 > 2, 1 > 2


def test_pairwise_loss_is_both_positions_by_hand() -> None:
    # u better than v: read as A (ℓ(u,v) = 1) and as B (ℓ(v,u) = 0.5, the judge wrongly names v a bit)
    got = float(pair_verdicts(torch.tensor(1.0), torch.tensor(0.5)))
    want = 0.5 * (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.5)))
    assert got == pytest.approx(want)


@pytest.fixture(scope="module")
def pw(tiny_lm: Path):
    from lmforge.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_lm))
    verdict = build_pairwise(tok, "chat", "Which is better, A or B?")
    torch.manual_seed(0)
    model, tok, _ = create_reward_model(RewardModelSection(path=str(tiny_lm), head="generative"), [], verdict)
    return model, tok, verdict


def test_template_and_truncation(pw) -> None:
    _, tok, verdict = pw
    t = verdict.pairwise
    assert verdict.mode == "pairwise" and verdict.yes_id != verdict.no_id
    assert "Which is better, A or B?" in t["close"]
    assert build_pairwise(tok, "transcript").pairwise["close"] == f"\n\n{PAIR_QUESTION}\nAssistant:"
    prompt = [{"role": "user", "content": "Tell me about cats " * 20}]
    p, resp, cut = pair_pieces(tok, verdict, prompt, ["sure " * 80, "ok."], 120)
    fixed = sum(len(t[k]) for k in ("open_ids", "label_a_ids", "label_b_ids", "close_ids"))
    budget = 120 - fixed
    room = max((budget - (len(p) - len(t["open_ids"]))) // 2, budget // 4)
    assert cut and len(resp[0]) <= budget // 2 and len(p) - len(t["open_ids"]) + 2 * max(map(len, resp)) <= budget
    # the room does not depend on the responses: the same prompt keeps the same tokens beside other responses
    p2, resp2, _ = pair_pieces(tok, verdict, prompt, ["ok.", "no."], 120)
    assert p2 == p and len(resp[0]) == room
    with pytest.raises(InputError, match="max_length"):
        pair_pieces(tok, verdict, prompt, ["a"], fixed + 4)


def groups_of(tok, verdict) -> list[Group]:
    out = []
    for i in range(3):
        g = Group(prompt=[{"role": "user", "content": f"Tell me about cats number {i}." + " more" * (3 * i)}],
                  responses=[r + " sure" * i for r in RESPONSES])
        g.rankings.append(([2, 0, 1], [0, 1, 2], 1.0, 0))
        g.pairs.append((0, 1, float("nan"), 2.0, 0))
        out.append(g)
    return out


def test_each_reading_is_the_plain_lm_log_odds(pw) -> None:
    model, tok, verdict = pw
    model.eval()
    pgs = pair_groups(groups_of(tok, verdict), tok, verdict, 200, DataReport())
    rows = pgs[1].encoded
    flat = branch_scores(model, rows, tok.pad_token_id, batch_size=4)
    e = rows[1]
    with torch.no_grad():
        for b, branch in enumerate(e.branches):
            lp = torch.log_softmax(model(torch.tensor([e.input_ids + branch])).logits[0, -1], -1)
            want = lp[verdict.yes_id] - lp[verdict.no_id]
            torch.testing.assert_close(flat[len(rows[0].branches) + b], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row_tokens", [16, 4000])
def test_packed_pairwise_scores_loss_and_gradients_equal_padded(pw, row_tokens: int) -> None:
    model, tok, verdict = pw
    model.train()
    pgs = pair_groups(groups_of(tok, verdict), tok, verdict, 200, DataReport())
    # the pair 0 > 1 weighted 2, then the ranking (2 > 0 > 1): 3 comparisons weighted 1/3 each
    assert [w for *_, w in pgs[0].comparisons] == pytest.approx([2.0] + [1 / 3] * 3) and pgs[0].records == 3.0
    loss_fn = make_pairwise_loss(64)
    out = []
    for rows in (None, row_tokens):
        batch = collate_pairs(pgs, tok.pad_token_id, rows)
        model.zero_grad(set_to_none=True)
        lo = loss_fn(model, batch)
        lo.loss.backward()
        s = generative_scores(model, batch)[0][:, 0].detach()
        out.append((s, float(lo.loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters()
                                                 if p.grad is not None}, batch))
    (s0, l0, g0, b0), (s1, l1, g1, _) = out
    torch.testing.assert_close(s0, s1, rtol=1e-4, atol=1e-5)
    # the loss by hand from the scores: Σ w · ½ [softplus(-ℓ(u,v)) + softplus(ℓ(v,u))]
    ab, ba = s0[b0["cmp_ab"]], s0[b0["cmp_ba"]]
    want = float((b0["cmp_w"] * 0.5 * (torch.nn.functional.softplus(-ab) + torch.nn.functional.softplus(ba))).sum())
    assert l0 == pytest.approx(want, rel=1e-5) and l1 == pytest.approx(l0, rel=1e-5)
    assert b0["count"] == 9.0
    for k in g0:
        torch.testing.assert_close(g0[k], g1[k], rtol=1e-4, atol=1e-5)


def test_comparisons_skip_ties() -> None:
    g = Group(prompt=[{"role": "user", "content": "q"}], responses=["a", "b", "c"])
    g.rankings.append(([0, 1, 2], [0, 0, 1], 1.0, 0))  # 0 and 1 tied: pairs (0,2), (1,2)
    cmp, records = comparisons(g)
    assert cmp == [(0, 2, 0.5), (1, 2, 0.5)] and records == 1.0


def test_pairwise_stage_trains_compares_and_ranks(tiny_lm: Path, mixed_files, tmp_path: Path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    from lmforge.models.reward_scores import RewardScorer

    train, ev = mixed_files
    assert cli(rm_args(tiny_lm, train, ev, tmp_path, "pw", "epochs=4", "model.head=generative",
                       "model.verdict.mode=pairwise", "model.verdict.pair_question=Which is better, A or B?",
                       "model.max_length=96")) == 0
    run = tmp_path / "pw"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["prompt_sharing"].startswith("on"), summary
    assert summary["data"]["skipped binary: pairwise verdicts learn from pairs and rankings"] == 24
    assert summary["heldout_pair_accuracy"] >= 0.9, summary
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("answers_a" in r for r in rows)
    side = json.loads((run / "final" / "reward.json").read_text())
    assert side["verdict"]["mode"] == "pairwise" and side["reward_mean"] == 0.0
    AutoModelForCausalLM.from_pretrained(run / "final")
    scorer = RewardScorer(run / "final")
    p = "Tell me about cats number 5001."
    good, bad = "clearly helpful correct answer.", "no wrong rude nonsense."
    r = scorer.compare(p, good, bad)
    assert r > 0 and scorer.compare(p, bad, good) == pytest.approx(-r, abs=1e-5)  # antisymmetric
    order, strength = scorer.rank(p, [bad, good, "sure here is the answer."])
    assert order[-1] == 0 and strength.shape == (3,)
    assert scorer.rank(p, [bad, good], method="copeland")[0] == [1, 0]
    with pytest.raises(InputError, match="compare"):
        scorer.score([p], [good])
    torch.testing.assert_close(scorer.score([p], [good], references=[bad])[:, 0], torch.tensor([r]))
    inp = write_jsonl(tmp_path / "score.jsonl", [{"prompt": p, "responses": [bad, good]},
                                                  {"prompt": p, "response": good, "reference": bad}])
    assert cli(["rm", "score", str(run / "final"), str(inp), "--out", str(tmp_path / "out.jsonl")]) == 0
    ranked, versus = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert ranked["ranking"] == [1, 0] and ranked["reward"][1] > ranked["reward"][0]
    assert versus["reward"] == pytest.approx(r, abs=1e-5)
    bad_cfg = cli(rm_args(tiny_lm, train, ev, tmp_path, "pw2", "model.head=generative", "model.verdict.mode=pairwise",
                          "model.likelihood_weight=1"))
    assert bad_cfg == 2 and "likelihood_weight" in capsys.readouterr().err
