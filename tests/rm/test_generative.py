"""The generative head: the verdict suffix after each response, the reward read off the plain causal LM's own
next-token logits, the same scores and gradients packed and padded, the auxiliary LM loss, save / load / score."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmforge.data.preference import Ranking
from lmforge.data.reward_data import DataReport, Group, HeadSpec, build_groups, collate_groups, tokenize_groups
from lmforge.errors import InputError
from lmforge.models.reward import RewardModelSection, create_reward_model, head_kind, prepare_trainable
from lmforge.models.reward_scores import check_sharing, forward_scores, generative_scores, score_texts
from lmforge.models.verdict import QUESTION, build_verdict, verdict_of

RESPONSES = ["sure here is the answer.", "no wrong bad nonsense rude broken no.", "clearly correct " * 6, "ok."]


@pytest.fixture(scope="module")
def gen(tiny_lm: Path):
    from lmforge.models.load import load_tokenizer

    tok = load_tokenizer(str(tiny_lm))
    verdict = build_verdict(tok, "chat")
    torch.manual_seed(0)
    model, tok, kind = create_reward_model(RewardModelSection(path=str(tiny_lm), head="generative"), [], verdict)
    return model, tok, verdict


def groups_of(tok, verdict, fmt="chat", k=4, prompts=3, max_length=128) -> list[Group]:
    out = [Group(prompt=[{"role": "user", "content": f"Tell me about cats number {i}." + " more" * (3 * i)}],
                 responses=[r + " sure" * i for r in RESPONSES[:k]]) for i in range(prompts)]
    tokenize_groups(out, tok, fmt, max_length, DataReport(), verdict.suffix_ids)
    return out


def test_verdict_template_follows_the_chat_template(gen) -> None:
    model, tok, verdict = gen
    assert QUESTION in verdict.suffix and verdict.yes_id != verdict.no_id
    plain = tok(verdict.suffix, add_special_tokens=False)["input_ids"]
    assert verdict.suffix_ids[:len(plain)] == plain  # then the answers' common first tokens, if any
    # the suffix is what the chat template appends for a follow-up user turn
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    more = tok.apply_chat_template(conv + [{"role": "user", "content": QUESTION}], tokenize=False,
                                   add_generation_prompt=True)
    assert more == tok.apply_chat_template(conv, tokenize=False) + verdict.suffix
    assert verdict_of(model).suffix_ids == verdict.suffix_ids
    t = build_verdict(tok, "transcript")
    assert t.suffix == f"\nUser: {QUESTION}\nAssistant:"
    # " Yes" / " No" are not words of this tiny vocabulary: both start with the space token, which joins the
    # suffix, and the verdict is read at the next token
    space = tok(" Yes", add_special_tokens=False)["input_ids"][0]
    assert t.suffix_ids[-1] == space and t.yes_id != t.no_id != space
    with pytest.raises(InputError, match="do not differ"):
        build_verdict(tok, "chat", yes="sure", no="sure sure")


def test_reward_is_the_plain_lm_log_odds_at_the_verdict(gen) -> None:
    model, tok, verdict = gen
    model.eval()
    groups = groups_of(tok, verdict)
    e = groups[1].encoded[2]
    assert e.input_ids[-len(verdict.suffix_ids):] == verdict.suffix_ids and e.suffix_len == len(verdict.suffix_ids)
    with torch.no_grad():
        logits = model(torch.tensor([e.input_ids])).logits[0, -1]
        lp = torch.log_softmax(logits, -1)
        want = lp[verdict.yes_id] - lp[verdict.no_id]
        got = forward_scores(model, collate_groups(groups, tok.pad_token_id, 1))
    assert got.shape == (12, 1)
    torch.testing.assert_close(got[4 + 2, 0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("row_tokens", [16, 1000])
@pytest.mark.parametrize("fmt", ["chat", "transcript"])
def test_packed_scores_lm_loss_and_gradients_equal_padded(gen, row_tokens: int, fmt: str) -> None:
    model, tok, _ = gen
    verdict = build_verdict(tok, fmt)
    model.config.reward = {"head": "generative", "verdict": verdict.as_dict()}
    model.train()
    groups = groups_of(tok, verdict, fmt)
    out = []
    for rows, chunk in ((None, None), (row_tokens, 64)):
        batch = collate_groups(groups, tok.pad_token_id, 1, rows)
        model.zero_grad(set_to_none=True)
        s, nll, n = generative_scores(model, batch, chunk, lm_loss=True)
        (s[:, 0] * torch.linspace(-1, 1, len(s)) + nll / n).sum().backward()
        out.append((s.detach(), float(nll.detach()), n, {k: p.grad.clone() for k, p in model.named_parameters()
                                               if p.grad is not None}))
    (s0, nll0, n0, g0), (s1, nll1, n1, g1) = out
    # the positions and the mask make each packed response see exactly its unpacked tokens and positions
    torch.testing.assert_close(s0, s1, rtol=1e-4, atol=1e-5)
    assert n0 == n1 == sum(len(e.input_ids) - e.prompt_len - e.suffix_len - 1 for g in groups for e in g.encoded)
    assert nll1 == pytest.approx(nll0, rel=1e-5)
    assert g0.keys() == g1.keys() and g0
    for k in g0:
        torch.testing.assert_close(g0[k], g1[k], rtol=1e-4, atol=1e-5)
    ok, why = check_sharing(model, groups, tok.pad_token_id, row_tokens)
    assert ok, why
    model.config.reward = {"head": "generative", "verdict": build_verdict(tok, "chat").as_dict()}


def test_truncation_keeps_the_verdict(gen) -> None:
    _, tok, verdict = gen
    g = Group(prompt=[{"role": "user", "content": "Tell me about cats " * 30}], responses=["sure " * 60])
    rep = DataReport()
    tokenize_groups([g], tok, "chat", len(verdict.suffix_ids) + 40, rep, verdict.suffix_ids)
    e = g.encoded[0]
    assert len(e.input_ids) == len(verdict.suffix_ids) + 40 and e.truncated and rep.counts
    assert e.input_ids[-len(verdict.suffix_ids):] == verdict.suffix_ids
    with pytest.raises(InputError, match="max_length"):
        tokenize_groups([g], tok, "chat", len(verdict.suffix_ids), DataReport(), verdict.suffix_ids)


def test_candidate_types_reach_the_groups() -> None:
    r = Ranking(prompt="q", responses=["a", "b", "c"], ranking=[0, 1, 2],
                meta={"candidate_types": ["reference", "hedge", "wrong_entity"]})
    (g,) = build_groups([r], HeadSpec([]), DataReport())
    assert g.types == {0: "reference", 1: "hedge", 2: "wrong_entity"}


def test_lora_trains_adapters_only(tiny_lm: Path, gen) -> None:
    _, tok, verdict = gen
    cfg = RewardModelSection(path=str(tiny_lm), head="generative", lora={"method": "lora", "r": 4})
    model, tok, _ = create_reward_model(cfg, [], verdict)
    model = prepare_trainable(model, cfg, tok)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    groups = groups_of(tok, verdict)
    ok, why = check_sharing(model, groups, tok.pad_token_id, 256)
    assert ok, why
    s = forward_scores(model, collate_groups(groups, tok.pad_token_id, 1, 256))
    s.sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "lora_B" in n)


def test_encoder_has_no_generative_head() -> None:
    with pytest.raises(InputError, match="causal LM"):
        head_kind(RewardModelSection(path="x", head="generative"), "encoder")


def test_saved_folder_is_a_plain_causal_lm_and_scores_the_same(gen, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from lmforge.models.reward import RewardMeta, save_reward_model
    from lmforge.runs import Run, RunConfig

    model, tok, verdict = gen
    model.eval()
    run = Run.create(tmp_path / "run", RunConfig(name="run", root=str(tmp_path)), overwrite=True)
    meta = RewardMeta(backbone="tiny", kind="causal", input_format="chat", max_length=128, head="generative",
                      verdict=verdict.as_dict(), reward_mean=0.5, reward_std=2.0)
    final = save_reward_model(run, model, tok, meta)
    side = json.loads((final / "reward.json").read_text())
    assert side["head"] == "generative" and side["verdict"]["yes_id"] == verdict.yes_id
    plain = AutoModelForCausalLM.from_pretrained(final).eval()
    prompts = ["Tell me about cats number 1.", [{"role": "user", "content": "Tell me about snow number 2."}]]
    got = score_texts(final, prompts, RESPONSES[:2])
    assert got.shape == (2, 1)
    groups = [Group(prompt=[{"role": "user", "content": p}] if isinstance(p, str) else p, responses=[r])
              for p, r in zip(prompts, RESPONSES[:2])]
    tokenize_groups(groups, tok, "chat", 128, DataReport(), verdict.suffix_ids)
    with torch.no_grad():
        for i, g in enumerate(groups):
            lp = torch.log_softmax(plain(torch.tensor([g.encoded[0].input_ids])).logits[0, -1], -1)
            assert float(got[i, 0]) == pytest.approx(float(lp[verdict.yes_id] - lp[verdict.no_id]), abs=1e-4)
    assert head_kind(RewardModelSection(path=str(final)), "causal") == "generative"  # auto keeps the head
    # RL's reward interface reads the same folder through the same scorer: verdict log-odds, then normalised
    from lmforge.rewards.model_reward import ModelReward

    reward = ModelReward(final, normalize=True)
    messages = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
    r = reward(messages, RESPONSES[:2], [None, None])
    assert torch.allclose(r, (got[:, 0] - 0.5) / 2.0, atol=1e-5)


def test_likelihood_term_is_the_mean_response_logprob_packed_or_padded(gen) -> None:
    model, tok, _ = gen
    verdict = build_verdict(tok, "chat", likelihood_weight=0.5)
    model.config.reward = {"head": "generative", "verdict": verdict.as_dict()}
    model.eval()
    try:
        groups = groups_of(tok, verdict)
        with torch.no_grad():
            padded = forward_scores(model, collate_groups(groups, tok.pad_token_id, 1))
            packed = forward_scores(model, collate_groups(groups, tok.pad_token_id, 1, 64), chunk_tokens=64)
            e = groups[2].encoded[1]
            ids = torch.tensor([e.input_ids])
            lp = torch.log_softmax(model(ids).logits[0], -1)
            odds = lp[-1, verdict.yes_id] - lp[-1, verdict.no_id]
            # response tokens 2..n (the first is predicted from the prompt's last token), not the suffix
            start, end = e.prompt_len, len(e.input_ids) - e.suffix_len
            mean = torch.stack([lp[t, e.input_ids[t + 1]] for t in range(start, end - 1)]).mean()
        torch.testing.assert_close(padded[8 + 1, 0], odds + 0.5 * mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(packed, padded, rtol=1e-4, atol=1e-5)
    finally:
        model.config.reward = {"head": "generative", "verdict": build_verdict(tok, "chat").as_dict()}
