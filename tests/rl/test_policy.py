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
