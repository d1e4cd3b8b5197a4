"""The lean decode loop and the batched sampler: the tokens ``generate`` would pick, an exact draw per row."""
from __future__ import annotations

import pytest
import torch

from lmforge.generation import SamplingParams
from lmforge.generation.decode import GrowingLayer, decode, kv_cache
from lmforge.generation.hf_backend import RowSampler, left_pad
from lmforge.generation.outputs import Row


def _gpt2(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        initializer_range=0.3)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])  # gpt2: learned absolute positions, so they must be right
def test_greedy_tokens_equal_transformers_generate(model, tokenizer, prompts, kind):
    """Same inputs as ``generate`` (position ids from the mask, left padding): the same greedy tokens."""
    from transformers import GenerationConfig

    model = _gpt2(tokenizer) if kind == "gpt2" else model
    pad = tokenizer.pad_token_id
    ids, mask = left_pad(prompts + prompts[1:3], pad, "cpu")  # repeated prompts share one prefill
    n = 12
    cfg = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad, eos_token_id=None)
    with torch.no_grad():
        want = model.generate(input_ids=ids, attention_mask=mask, generation_config=cfg)[:, ids.shape[1]:]
    got = []

    def choose(seq, logits, rows):
        tok = logits.argmax(-1)
        got.append(tok)
        return tok, torch.ones_like(tok, dtype=torch.bool)

    decode(model, ids, mask, n, choose)
    assert torch.equal(torch.stack(got, 1), want)


def test_rows_that_finish_leave_the_batch_without_changing_the_others(engine, prompts):
    """Stopping some rows early drops them from the batch (the cache is index-selected): the rows that go on
    produce what they produce with no stop at all."""
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=4)
    full = engine.generate(prompts, params, step=0)
    stop = full[0][0].token_ids[1]  # row 0 stops at its second token; others wherever this id comes up
    cut = engine.generate(prompts, params.model_copy(update={"stop_token_ids": [stop]}), step=0)
    assert sum(c.finish_reason == "stop" for (c,) in cut) >= 1
    for (f,), (c,) in zip(full, cut):
        k = f.token_ids.index(stop) if stop in f.token_ids else len(f.token_ids)
        assert c.token_ids == f.token_ids[:k]
        assert c.logprobs == pytest.approx(f.logprobs[:k], abs=1e-5)


def test_growing_layer_holds_what_a_dynamic_layer_holds_past_its_capacity():
    from transformers.cache_utils import DynamicLayer

    grow, plain = GrowingLayer(capacity=3), DynamicLayer()
    torch.manual_seed(0)
    for k in (2, 1, 1, 4):  # 2 + 1 fill the capacity, the next steps grow it
        kv = torch.randn(2, 1, k, 4), torch.randn(2, 1, k, 4)
        a, b = grow.update(*kv), plain.update(*kv)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert grow.get_seq_length() == plain.get_seq_length() == 8
    grow.batch_select_indices(torch.tensor([1]))
    assert torch.equal(grow.keys, plain.keys[1:]) and grow.get_seq_length() == 8


def test_full_attention_layers_grow_in_place_and_other_kinds_stay(model):
    from transformers import MistralConfig, MistralForCausalLM

    assert all(type(layer) is GrowingLayer for layer in kv_cache(model, 16).layers)
    sliding = MistralForCausalLM(MistralConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                               num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                               sliding_window=4))
    assert not any(type(layer) is GrowingLayer for layer in kv_cache(sliding, 16).layers)


def _sampler(n_rows: int, seed: int = 0, **params) -> RowSampler:
    rows = [Row([1], seed=seed + s, max_new_tokens=10**6, stop_ids=frozenset()) for s in range(n_rows)]
    return RowSampler(rows, SamplingParams(temperature=1.0, **params), None, 1, "cpu")


def test_the_batched_draw_samples_each_rows_own_distribution():
    torch.manual_seed(0)
    logits = torch.randn(3, 6) * 2
    logits[:, 2] = -float("inf")  # a filtered token (top-k / top-p tail) is never drawn
    logp = torch.log_softmax(logits, -1)
    smp, rows = _sampler(3), torch.arange(3)
    counts = torch.zeros(3, 6)
    draws = 40000
    for _ in range(draws):
        counts[rows, smp._draw(logp, rows)] += 1
    freq = counts / draws
    assert counts[:, 2].sum() == 0
    # 4.5 binomial standard deviations (deterministic: the generators are seeded)
    sd = (logp.exp() * (1 - logp.exp()) / draws).sqrt()
    assert ((freq - logp.exp()).abs() <= 4.5 * sd + 1e-9).all()


def test_a_rows_draws_do_not_depend_on_its_batch_mates():
    """Row seeds 0..3 drawn together, and row seed 2 drawn alone or beside other logits: the same tokens."""
    torch.manual_seed(1)
    logp = torch.log_softmax(torch.randn(4, 50), -1)
    together = _sampler(4)
    alone = _sampler(1, seed=2)
    other = torch.log_softmax(torch.randn(4, 50), -1)
    other[2] = logp[2]
    mixed = _sampler(4)
    for _ in range(20):
        a = together._draw(logp, torch.arange(4))[2]
        b = alone._draw(logp[2:3], torch.arange(1))[0]
        c = mixed._draw(other, torch.arange(4))[2]
        assert a == b == c


def test_the_steps_4d_mask_gives_what_the_2d_mask_gives(model, prompts, monkeypatch):
    """Padded prompts on an SDPA model over full-attention layers: the steps pass the 4-D boolean mask (a view
    of one tensor) instead of the 2-D one transformers rebuilds it from: the same logits at every step, rows
    leaving the batch included. Eager attention (an additive float mask) and unpadded prompts keep the 2-D."""
    import lmforge.generation.decode as dec

    ids, mask = left_pad(prompts + prompts[:2], 0, "cpu")
    assert model.config._attn_implementation == "sdpa" and not bool(mask.all())
    names = dec._forward_params(model)
    assert dec._step_masks(model, kv_cache(model, 8), mask, mask, names) is not None
    assert dec._step_masks(model, kv_cache(model, 8), torch.ones_like(mask), mask, names) is None

    def run():
        seen = []

        def choose(seq, logits, rows):
            seen.append((rows.clone(), logits.clone()))
            tok = logits.argmax(-1)
            return tok, rows != (len(seen) % 7)  # some rows stop along the way (the batch compacts)
        decode(model, ids, mask, 10, choose)
        return seen

    fast = run()
    monkeypatch.setattr(dec, "_step_masks", lambda *a: None)
    slow = run()
    assert len(fast) == len(slow)
    for (ra, la), (rb, lb) in zip(fast, slow):
        assert torch.equal(ra, rb) and torch.allclose(la, lb, atol=1e-6)
    monkeypatch.undo()
    model.config._attn_implementation = "eager"
    try:
        assert dec._step_masks(model, kv_cache(model, 8), mask, mask, names) is None
    finally:
        model.config._attn_implementation = "sdpa"


def test_a_buffer_replaced_under_inference_mode_is_a_normal_tensor_after_decoding(model, prompts):
    """decode runs under inference mode; a model that replaces a buffer during its forward (a dynamic RoPE's
    frequencies) must still train afterwards (an inference tensor cannot be saved for backward)."""
    rotary = model.model.rotary_emb
    real = rotary.forward
    before = rotary.inv_freq

    def replacing(x, position_ids):
        rotary.inv_freq = rotary.inv_freq * 1.0  # what a dynamic update does: a new tensor, made here
        return real(x, position_ids)

    rotary.forward = replacing
    try:
        ids, mask = left_pad(prompts, 0, "cpu")
        decode(model, ids, mask, 3, lambda seq, logits, rows: (logits.argmax(-1), torch.ones_like(rows).bool()))
        assert not rotary.inv_freq.is_inference()
        model.train()
        model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    finally:
        rotary.forward = real
        rotary.inv_freq = before
        model.eval()
        model.zero_grad(set_to_none=True)
