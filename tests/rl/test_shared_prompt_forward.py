"""Rows that share a prompt run it once (models/shared_prompt.py): the scored logits and the gradients of the padded
forward, in the same order; the padded forward wherever sharing does not apply."""
from __future__ import annotations

import pytest
import torch


def _rows(lengths: list[int], group: int, responses: list[int]):
    from lmforge.rl.buffer import pack_rows

    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(5, 300, (n,), generator=g).tolist() for n in lengths]
    p_ids = [p for p in prompts for _ in range(group)]
    resp = [torch.randint(5, 300, (r,), generator=g).tolist() for r in responses]
    return pack_rows(p_ids, resp, 0)


def _padded(policy, rows):
    from lmforge.models.logprobs import head_on_rows

    scored = rows["mask"].bool()
    with head_on_rows(policy, scored, True):
        return policy(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"], use_cache=False).logits


def test_prompt_lengths_come_from_the_targets():
    from lmforge.models.shared_prompt import prompt_lengths

    rows = _rows([3, 5], 2, [4, 1, 0, 2])
    assert prompt_lengths(rows["targets"], rows["attention_mask"]).tolist() == [3, 3, 5, 5]


def test_shared_prompts_give_the_padded_forwards_logits_and_gradients(tiny_lm):
    from lmforge.models.load import load_causal_lm
    from lmforge.models.shared_prompt import shared_prefix_logits

    policy = load_causal_lm(str(tiny_lm))
    # 3 prompts of different lengths x 3 rows, responses of different lengths (one empty: all prompt)
    rows = _rows([4, 9, 2], 3, [6, 3, 8, 5, 5, 0, 7, 1, 4])
    scored = rows["mask"].bool()
    tgt = rows["targets"]
    got = shared_prefix_logits(policy, rows["input_ids"], rows["attention_mask"], tgt, scored)
    want = _padded(policy, rows)
    assert got is not None and got.shape == want.shape == (int(scored.sum()), want.shape[-1])
    assert torch.allclose(got, want, atol=1e-5)
    grads = []
    for logits in (got, want):
        policy.zero_grad(set_to_none=True)
        torch.log_softmax(logits, -1).gather(-1, tgt[scored][:, None]).sum().backward()
        grads.append({n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("case", ["distinct prompts", "one-token prompt"])
def test_the_padded_forward_runs_where_sharing_does_not_apply(tiny_lm, case):
    from lmforge.models.load import load_causal_lm
    from lmforge.models.shared_prompt import shared_prefix_logits

    policy = load_causal_lm(str(tiny_lm))
    rows = _rows([4, 5, 6], 1, [3, 3, 3]) if case == "distinct prompts" else _rows([1, 4], 2, [3, 3, 3, 3])
    assert shared_prefix_logits(policy, rows["input_ids"], rows["attention_mask"], rows["targets"],
                                rows["mask"].bool()) is None


def test_the_rl_model_uses_it_only_without_values(tiny_lm):
    """PolicyWithValue with targets and no critic shares; with the shared critic it runs the padded forward
    (values at every position). Either way the scored logits are the padded forward's."""
    from lmforge.models.load import load_causal_lm
    from lmforge.rl.policy import PolicyWithValue

    rows = _rows([4, 7], 2, [5, 2, 6, 3])
    scored = rows["mask"].bool()
    for critic in ("none", "shared"):
        model = PolicyWithValue(load_causal_lm(str(tiny_lm)), critic).eval()
        calls = []
        handle = model.policy.register_forward_pre_hook(lambda m, a, k, calls=calls: calls.append(k.get("use_cache")),
                                                        with_kwargs=True)
        with torch.no_grad():
            logits, values = model(rows["input_ids"], rows["attention_mask"], scored=scored, targets=rows["targets"])
            handle.remove()
            want = _padded(model.policy, rows)
        assert torch.allclose(logits, want, atol=1e-5)
        assert calls == ([True, True] if critic == "none" else [False]) and (values is None) == (critic == "none")
