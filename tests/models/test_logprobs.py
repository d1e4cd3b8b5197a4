"""token_logprobs against a direct full-vocabulary log_softmax of one padded forward, on a tiny llama."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from lmforge.models.logprobs import IGNORE, gather_logprobs, token_logprobs

VOCAB = 97


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    cfg._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(cfg).eval()


def _batch(lengths, seed=1):
    """Right-padded rows of mixed lengths; targets are the next ids (IGNORE past each row's end)."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.randint(1, VOCAB, (n,), generator=g)
        mask[r, :n] = 1
    targets = torch.full_like(ids, IGNORE)
    targets[:, :-1] = torch.where(mask[:, 1:].bool(), ids[:, 1:], IGNORE)
    return ids, mask, targets


def _direct(model, ids, mask, targets, temperature=1.0):
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float() / temperature
    lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return lp.masked_fill(targets < 0, 0.0)


@pytest.mark.parametrize("chunk_tokens", [None, 1, 20, 45, 10_000])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_equals_direct_log_softmax(model, chunk_tokens, temperature) -> None:
    ids, mask, targets = _batch([5, 17, 2, 11, 17, 8])
    want = _direct(model, ids, mask, targets, temperature)
    with torch.no_grad():
        got = token_logprobs(model, ids, targets, attention_mask=mask, temperature=temperature,
                             chunk_tokens=chunk_tokens)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got[targets < 0] == 0).all()
    # log-probs are O(log V) ~ -4.6: an absolute tolerance fits their magnitude (batch shape changes rounding)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


def test_temperature_changes_the_distribution(model) -> None:
    ids, mask, targets = _batch([9, 6])
    one = token_logprobs(model, ids, targets, attention_mask=mask)
    cold = token_logprobs(model, ids, targets, attention_mask=mask, temperature=0.7)
    assert not torch.allclose(one, cold)
    # sanity of the formula itself: probabilities over the vocabulary sum to 1 at any temperature
    z = torch.randn(3, VOCAB)
    every = torch.arange(VOCAB).expand(3, VOCAB)
    torch.testing.assert_close(gather_logprobs(z, every, 0.7).exp().sum(-1), torch.ones(3))


def test_left_padding_and_candidates(model) -> None:
    """Left-padded rows chunk by rows at full width; K candidate ids per position give [B, T, K]."""
    ids, mask, _ = _batch([7, 4, 7])
    for r in range(3):  # move each row's tokens to the right end
        n = int(mask[r].sum())
        ids[r] = torch.cat([ids[r, n:], ids[r, :n]])
        mask[r] = torch.cat([mask[r, n:], mask[r, :n]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cand = torch.full((3, 7, 3), IGNORE)
    cand[:, -1] = torch.tensor([5, 9, IGNORE])  # two candidates at the last position, one unused slot
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        want = torch.log_softmax(logits[:, -1].float(), -1)[:, [5, 9]]
        for chunk in (None, 7):
            got = token_logprobs(model, ids, cand, attention_mask=mask, position_ids=pos, chunk_tokens=chunk)
            assert got.shape == (3, 7, 3) and (got[:, :-1] == 0).all() and (got[:, -1, 2] == 0).all()
            torch.testing.assert_close(got[:, -1, :2], want, rtol=1e-5, atol=2e-5)


def test_gradients_flow_like_the_direct_loss(model) -> None:
    ids, mask, targets = _batch([6, 3, 9])
    model.zero_grad()
    token_logprobs(model, ids, targets, attention_mask=mask, chunk_tokens=12).sum().backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    lp.masked_fill(targets < 0, 0.0).sum().backward()
    for a, p in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)
    model.zero_grad()


def _head_rows_seen(model, fn):
    """Run ``fn`` and return the row counts the output head's input had (its leading dims, flattened)."""
    seen = []
    handle = model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: seen.append(args[0].shape[:-1].numel()))
    try:
        out = fn()
    finally:
        handle.remove()
    return out, seen


@pytest.mark.parametrize("chunk_tokens", [None, 20])
def test_head_on_scored_rows_equals_full_logits(model, chunk_tokens) -> None:
    """The head applied only at scored positions gives the full-logits path's values (1e-6) and gradients,
    and it really runs on the scored rows alone."""
    ids, mask, targets = _batch([5, 17, 2, 11, 17, 8], seed=3)
    targets[:, :3] = IGNORE  # a "prompt" that is not scored, as in DPO / RL
    kw = dict(attention_mask=mask, temperature=0.7, chunk_tokens=chunk_tokens)
    grads = []
    for full in (True, False):
        model.zero_grad()
        lp, seen = _head_rows_seen(model, lambda full=full: token_logprobs(model, ids, targets, all_logits=full, **kw))
        (lp * torch.linspace(0.5, 1.5, lp.numel()).view_as(lp)).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        if full:
            want = lp.detach()
            assert sum(seen) > int((targets >= 0).sum())
        else:
            assert sum(seen) == int((targets >= 0).sum())
            torch.testing.assert_close(lp.detach(), want, rtol=0, atol=1e-6)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    model.zero_grad()


def test_head_on_scored_rows_with_lora_and_candidates(model) -> None:
    """Through a PEFT model (LoRA also on the head) and with K candidates per position: equal to full logits."""
    peft = pytest.importorskip("peft")
    import copy

    lora = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False))
    ids, mask, targets = _batch([9, 4, 7], seed=5)
    cand = torch.stack([targets, torch.where(targets >= 0, (targets * 7) % VOCAB, IGNORE)], -1)
    with torch.no_grad():
        full = token_logprobs(lora, ids, cand, attention_mask=mask, all_logits=True)
        fast, seen = _head_rows_seen(lora, lambda: token_logprobs(lora, ids, cand, attention_mask=mask))
    assert seen == [int((targets >= 0).sum())]
    torch.testing.assert_close(fast, full, rtol=0, atol=1e-6)
