"""Seeding per (seed, step, rank, prompt index, sample): fresh noise across ranks and calls, exact replays."""
from __future__ import annotations

import torch

from lmforge.generation import GenerationEngine, SamplingParams, row_seed
from lmforge.rollout.generate import complete

HOT = SamplingParams(max_new_tokens=10, temperature=1.5, seed=11)


def ids(groups) -> list[list[list[int]]]:
    return [[c.token_ids for c in g] for g in groups]


def test_same_seed_step_rank_repeats_exactly_even_in_a_fresh_engine(engine, model, tokenizer, prompts):
    first = engine.generate(prompts, HOT, step=3, rank=1)
    again = engine.generate(prompts, HOT, step=3, rank=1)
    other = GenerationEngine(model, tokenizer)
    assert ids(first) == ids(again) == ids(other.generate(prompts, HOT, step=3, rank=1))
    assert [[c.logprobs for c in g] for g in first] == [[c.logprobs for c in g] for g in again]


def test_two_ranks_and_two_steps_draw_different_samples(engine, prompts):
    base = ids(engine.generate(prompts, HOT, step=0, rank=0))
    assert ids(engine.generate(prompts, HOT, step=0, rank=1)) != base
    assert ids(engine.generate(prompts, HOT, step=1, rank=0)) != base
    assert ids(engine.generate(prompts, HOT.model_copy(update={"seed": 12}), step=0, rank=0)) != base


def test_successive_calls_without_a_step_draw_fresh_samples_and_a_rerun_repeats_them(model, tokenizer, prompts):
    one = GenerationEngine(model, tokenizer)
    calls = [ids(one.generate(prompts, HOT, rank=0)) for _ in range(2)]
    assert calls[0] != calls[1]
    two = GenerationEngine(model, tokenizer)
    assert [ids(two.generate(prompts, HOT, rank=0)) for _ in range(2)] == calls


def test_rollout_generate_does_not_replay_its_noise_on_every_call(model, tokenizer):
    """The old ``rollout.generate`` reseeded the global RNG with ``sampling.seed`` on every call."""
    prompts = ["the cat", "paris is"]
    a = ids(complete(model, tokenizer, prompts, HOT))
    b = ids(complete(model, tokenizer, prompts, HOT))
    assert a != b
    assert ids(complete(model, tokenizer, prompts, HOT, step=7)) == ids(complete(model, tokenizer, prompts, HOT,
                                                                                 step=7))


def test_n_samples_of_one_prompt_differ_and_prompts_do_not_share_noise(engine, prompts):
    (group,) = engine.generate(prompts[:1], HOT.model_copy(update={"n": 4}), step=0, rank=0)
    assert len({tuple(c.token_ids) for c in group}) > 1
    seeds = {row_seed(11, 0, 0, i, j) for i in range(50) for j in range(4)}
    assert len(seeds) == 200 and all(0 <= s < 2**63 for s in seeds)


def test_the_global_torch_rng_is_left_alone(engine, prompts):
    state = torch.get_rng_state()
    engine.generate(prompts, HOT, step=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_none_is_fresh_randomness(engine, prompts):
    fresh = HOT.model_copy(update={"seed": None})
    assert ids(engine.generate(prompts, fresh, step=0)) != ids(engine.generate(prompts, fresh, step=0))


def test_rollout_does_not_keep_models_alive(tokenizer):
    import gc
    import weakref

    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    complete(model, tokenizer, ["the cat"], SamplingParams(max_new_tokens=2))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
