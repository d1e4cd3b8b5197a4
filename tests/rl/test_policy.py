"""The policy wrapper's head-on-scored-rows forward: the logits rows and values the full forward gives there."""
from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("critic", ["none", "shared"])
def test_scored_rows_only_equal_the_full_forwards_rows(tiny_lm, critic):
    from lmforge.models.load import load_causal_lm
    from lmforge.rl.policy import PolicyWithValue
    from lmforge.rl.rollout import masked_logprobs

    model = PolicyWithValue(load_causal_lm(str(tiny_lm)), critic).eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (3, 10))
    att = torch.ones_like(ids)
    att[2, 7:] = 0  # a right-padded row
    mask = torch.zeros(3, 10)
    mask[:, 4:7] = 1
    mask[1, 7:9] = 1
    tgt = ids.roll(-1, 1)
    full, v_full = model(ids, att)
    rows, v_rows = model(ids, att, scored=mask.bool())
    assert rows.shape == (int(mask.sum()), full.shape[-1])
    assert torch.allclose(rows, full[mask.bool()], atol=1e-5)
    if critic == "shared":
        assert torch.equal(v_rows, v_full)
    a, ea = masked_logprobs(full, tgt, mask, 0.7, entropy=True)
    b, eb = masked_logprobs(rows, tgt, mask, 0.7, entropy=True)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_one_log_softmax_gives_the_algos_logprobs_and_entropy_bit_for_bit(temperature):
    """masked_logprobs shares one log_softmax between the log-probs and the entropy (and skips z / 1): the values
    must be those of the two algos functions exactly, -inf logits (a ruled-out token: 0 · log 0 = 0) included,
    with and without the entropy's graph; and the gradients those of the separate computations."""
    from lmforge.algos.policy_losses import entropy_from_logits, token_logprobs
    from lmforge.rl.rollout import logprobs_entropy

    torch.manual_seed(0)
    z = torch.randn(40, 300) * 3
    z[3, :50] = -float("inf")
    z[7, 1:] = -float("inf")  # one possible token: entropy 0
    tok = torch.randint(50, 300, (40,))
    tok[7] = 0
    want_lp, want_h = token_logprobs(z, tok, temperature), entropy_from_logits(z, temperature)
    lp, h = logprobs_entropy(z, tok, temperature, entropy=True, entropy_grad=False)
    assert torch.equal(lp, want_lp) and torch.equal(h, want_h) and torch.isfinite(h).all() and h[7] == 0
    a = z.clone().requires_grad_()
    lp, h = logprobs_entropy(a, tok, temperature, entropy=True, entropy_grad=True)
    assert torch.equal(lp.detach(), want_lp) and torch.equal(h.detach(), want_h)
    (lp.sum() + h.sum()).backward()
    b = z.clone().requires_grad_()
    (token_logprobs(b, tok, temperature).sum() + entropy_from_logits(b, temperature).sum()).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6, equal_nan=True)  # NaN: d(0 · log 0) at -inf, both ways
    lp, h = logprobs_entropy(z, tok, temperature, entropy=False)
    assert h is None and torch.equal(lp, want_lp)


@pytest.mark.parametrize("critic", ["none", "shared"])
def test_right_padded_rows_run_without_the_mask_and_give_the_masked_forwards_outputs(tiny_lm, critic):
    """PolicyWithValue drops the attention mask of right-padded rows (the causal mask already keeps real tokens
    off the padding after them); every real position's logits and value must be the masked forward's. Rows that
    are not right-padded keep their mask."""
    from lmforge.models.load import load_causal_lm
    from lmforge.rl.policy import PolicyWithValue

    model = PolicyWithValue(load_causal_lm(str(tiny_lm)), critic).eval()
    if critic == "shared":
        torch.nn.init.normal_(model.value_head.weight)
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (3, 12))
    att = torch.ones_like(ids)
    att[0, 9:] = 0
    att[2, 5:] = 0
    seen = []
    hook = model.policy.register_forward_pre_hook(lambda m, a, k: seen.append(k.get("attention_mask")),
                                                  with_kwargs=True)
    with torch.no_grad():
        logits, values = model(ids, att)
        out = model.policy(input_ids=ids, attention_mask=att, output_hidden_states=True)
        left = att.flip(1)  # left-padded: the mask must stay
        model(ids, left)
    hook.remove()
    assert seen[0] is None and seen[2] is left
    real = att.bool()
    assert torch.allclose(logits[real], out.logits[real], atol=1e-5)
    if critic == "shared":
        want = model.value_head(out.hidden_states[-1]).squeeze(-1)
        assert torch.allclose(values[real], want[real], atol=1e-5)
