"""What the engine returns: batched == one by one, log-probabilities of the sampled distribution, stops."""
from __future__ import annotations

import pytest
import torch

from lmforge.generation import SamplingParams


def test_batched_greedy_equals_one_by_one_for_mixed_prompt_lengths(engine, prompts):
    params = SamplingParams(max_new_tokens=12, temperature=0)
    together = engine.generate(prompts, params)
    for p, (c,) in zip(prompts, together):
        (alone,), = engine.generate([p], params)
        assert c.token_ids == alone.token_ids and c.text == alone.text
        assert c.logprobs == pytest.approx(alone.logprobs, abs=1e-4)
        assert c.prompt_tokens == len(p) and c.completion_tokens == len(c.token_ids)
    assert len({tuple(c.token_ids) for (c,) in together}) > 1  # not one constant output


def test_small_batch_size_chunks_give_the_same_rows(engine, prompts):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3, n=2)
    whole = engine.generate(prompts, params, step=0, batch_size=32)
    chunked = engine.generate(prompts, params, step=0, batch_size=2)
    assert [[c.token_ids for c in g] for g in whole] == [[c.token_ids for c in g] for g in chunked]


def teacher_forced(model, prompt: list[int], completion: list[int], temperature: float) -> torch.Tensor:
    """log p(completion[i] | prefix) from one forward pass of the whole sequence at ``temperature``."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0]


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.6])
def test_logprobs_equal_a_teacher_forced_forward_at_the_sampling_temperature(engine, model, prompts, temperature):
    params = SamplingParams(max_new_tokens=10, temperature=temperature, seed=1)
    for p, (c,) in zip(prompts, engine.generate(prompts, params, step=0)):
        ref = teacher_forced(model, p, c.token_ids, temperature)
        assert c.logprobs == pytest.approx(ref.tolist(), abs=2e-4)
        if temperature != 1.0:  # and not the logits before temperature (the old server's mistake)
            raw = teacher_forced(model, p, c.token_ids, 1.0)
            assert (ref - raw).abs().max() > 1e-2


def test_greedy_logprobs_are_the_models_own_and_top_k_renormalises(engine, model, prompts):
    (c,), = engine.generate(prompts[1:2], SamplingParams(max_new_tokens=6, top_logprobs=3))
    ref = teacher_forced(model, prompts[1], c.token_ids, 1.0)
    assert c.logprobs == pytest.approx(ref.tolist(), abs=2e-4)
    assert all(top[0][0] == t and len(top) == 3 for t, top in zip(c.token_ids, c.top_logprobs))
    # top-k: the log-probability under the k kept tokens, renormalised (what was actually sampled from)
    (k,), = engine.generate(prompts[1:2], SamplingParams(max_new_tokens=6, temperature=1.0, top_k=4, seed=2),
                            step=0)
    ids = torch.tensor([prompts[1] + k.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompts[1]) - 1:-1]
    for pos, (t, lp) in enumerate(zip(k.token_ids, k.logprobs)):
        values, idx = logits[pos].topk(4)
        assert t in idx.tolist()
        assert lp == pytest.approx(float(torch.log_softmax(values, -1)[idx.tolist().index(t)]), abs=2e-4)


def test_length_limit_reports_length(engine, prompts):
    (c,), = engine.generate(prompts[:1], SamplingParams(max_new_tokens=5, stop_token_ids=[]))
    assert c.finish_reason == "length" and c.completion_tokens == 5 and not c.finished
    assert c.text == engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)


def test_stop_token_ids_cut_before_the_token(engine, prompts):
    params = SamplingParams(max_new_tokens=12)
    (full,), = engine.generate(prompts[2:3], params)
    stop = full.token_ids[4]
    first = full.token_ids.index(stop)
    (cut,), = engine.generate(prompts[2:3], params.model_copy(update={"stop_token_ids": [stop]}))
    assert cut.token_ids == full.token_ids[:first] and cut.finish_reason == "stop" and cut.finished
    assert cut.logprobs == pytest.approx(full.logprobs[:first], abs=1e-5)
    assert cut.stop_token == stop and cut.stop_logprob == pytest.approx(full.logprobs[first], abs=1e-5)
    assert full.stop_token is None and full.stop_logprob is None


def _stop_string_case(engine, prompts):
    """A greedy completion and a substring of its text that first occurs after a few characters."""
    params = SamplingParams(max_new_tokens=16)
    for p in prompts:
        (full,), = engine.generate([p], params)
        text = full.text
        for start in range(3, len(text) - 2):
            s = text[start:start + 2]
            if text.find(s) == start and "\ufffd" not in text[:start + 2] and s.strip():
                return p, full, s
    pytest.skip("no usable stop string in these completions")


def test_stop_strings_cut_exactly_and_report_the_reason(engine, prompts):
    p, full, s = _stop_string_case(engine, prompts)
    (cut,), = engine.generate([p], SamplingParams(max_new_tokens=16, stop=["never-there", s]))
    assert cut.text == full.text[:full.text.find(s)]
    assert cut.finish_reason == "stop_string" and cut.stop_string == s and cut.finished
    # the ids are a prefix of the uncut ones and cover the text: every kept token starts before the stop
    n = cut.completion_tokens
    assert cut.token_ids == full.token_ids[:n] and len(cut.logprobs) == n
    decode = engine.tokenizer.decode
    assert decode(cut.token_ids, skip_special_tokens=True).startswith(cut.text)
    assert len(decode(cut.token_ids[:-1], skip_special_tokens=True)) < len(cut.text) or n == 0
    assert n < full.completion_tokens  # and generation stopped early rather than cutting afterwards


def test_a_stop_string_at_the_start_leaves_nothing(engine, prompts):
    (full,), = engine.generate(prompts[:1], SamplingParams(max_new_tokens=4))
    (cut,), = engine.generate(prompts[:1], SamplingParams(max_new_tokens=4, stop=[full.text[:1]]))
    assert cut.text == "" and cut.token_ids == [] and cut.logprobs == [] and cut.finish_reason == "stop_string"


def test_the_shared_tokenizer_is_never_mutated(engine, prompts):
    tok = engine.tokenizer
    before = (tok.padding_side, tok.pad_token_id, tok.truncation_side)
    engine.generate(prompts, SamplingParams(max_new_tokens=3, n=2, temperature=1.0))
    assert (tok.padding_side, tok.pad_token_id, tok.truncation_side) == before == ("right", 0, "right")
