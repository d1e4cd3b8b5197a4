"""The one SamplingParams: validation, the stage section built on it, the OpenAI request mapped onto it."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from lmforge.config import load_config
from lmforge.errors import InputError
from lmforge.generation import SamplingParams


def test_validation_and_defaults():
    p = SamplingParams(stop=["", "###"])
    assert p.stop == ["###"] and p.greedy and p.max_new_tokens == 64
    for bad in ({"temperature": -1}, {"top_p": 0}, {"n": 0}, {"stop": ["x"] * 17}, {"top_logprobs": 21}):
        with pytest.raises(ValidationError):
            SamplingParams(**bad)
    assert SamplingParams(temperature=1, seed=1).batch_key() == SamplingParams(temperature=1, seed=2, n=3).batch_key()
    assert SamplingParams(temperature=1).batch_key() != SamplingParams(temperature=0.5).batch_key()


def test_the_generate_stage_embeds_it_with_its_own_defaults(tmp_path):
    from lmforge.stages.generate import GenerateConfig

    cfg = load_config(GenerateConfig, None, [f"run.root={tmp_path}", "model=m", "sampling.seed=3"])
    assert isinstance(cfg.sampling, SamplingParams)
    assert (cfg.sampling.temperature, cfg.sampling.top_p, cfg.sampling.max_new_tokens, cfg.sampling.seed) == \
        (1.0, 0.95, 128, 3)  # overriding one key keeps the stage's other defaults
    with pytest.raises(InputError, match="sampling.n"):
        load_config(GenerateConfig, None, [f"run.root={tmp_path}", "model=m", "k=4", "sampling.n=3"])
    with pytest.raises(InputError, match="sampling.stop_strings"):
        load_config(GenerateConfig, None, [f"run.root={tmp_path}", "model=m", "sampling.stop_strings=[x]"])


def test_the_openai_request_maps_onto_it():
    from lmforge.serve.openai_server import ChatCompletionRequest

    req = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=7,
                                temperature=0.3, top_p=0.8, n=2, seed=9, stop="END", logprobs=True,
                                top_logprobs=2)
    p = req.params()
    assert isinstance(p, SamplingParams)
    assert (p.max_new_tokens, p.temperature, p.top_p, p.n, p.seed, p.stop, p.logprobs, p.top_logprobs) == \
        (7, 0.3, 0.8, 2, 9, ["END"], True, 2)
    assert ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}]).params().max_new_tokens \
        is None  # the server fills in what fits the context
