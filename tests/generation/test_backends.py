"""Backends share one interface: ``run(rows, params) -> RowResult`` per row, ``load_weights``, ``context``.

vLLM is an optional GPU extra: on CPU it is tested by this contract only, through a stand-in ``vllm`` module
that records what it was asked and answers in vLLM's output shapes; the real engine runs where it is installed.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass

import pytest

from lmforge.generation import GenerationEngine, SamplingParams
from lmforge.generation.hf_backend import HFBackend
from lmforge.generation.outputs import Row
from lmforge.generation.vllm_backend import VLLMBackend, row_result, vllm_sampling


@pytest.mark.parametrize("cls", [HFBackend, VLLMBackend])
def test_backends_have_the_same_interface(cls):
    assert list(inspect.signature(cls.run).parameters) == ["self", "rows", "params"]
    assert list(inspect.signature(cls.load_weights).parameters) == ["self", "state_dict"]
    assert isinstance(inspect.getattr_static(cls, "context"), property)


@dataclass
class FakeLogprob:
    logprob: float


@dataclass
class FakeOutput:
    token_ids: list[int]
    logprobs: list[dict[int, FakeLogprob]]
    finish_reason: str
    stop_reason: object = None


class FakeLLM:
    """Answers each request with tokens 5, 6, 7 (and stops on a stop id if one of them is)."""

    def __init__(self, model=None, **kwargs):
        self.kwargs, self.calls, self.weights = kwargs, [], None
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=256))

    def generate(self, prompts, sampling_params, use_tqdm=False):
        self.calls.append((prompts, sampling_params))
        outs = []
        for sp in sampling_params:
            ids = [5, 6, 7][:sp.max_tokens]
            stop = next((k for k, t in enumerate(ids) if t in sp.stop_token_ids), None)
            if stop is not None:
                ids = ids[:stop + 1]
            lps = [{t: FakeLogprob(-0.5 - t / 100), 99: FakeLogprob(-3.0)} for t in ids]
            reason = "stop" if stop is not None else "length"
            outs.append(types.SimpleNamespace(outputs=[FakeOutput(ids, lps, reason)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_vllm_backend_maps_rows_and_outputs(fake_vllm, tokenizer):
    eng = GenerationEngine("some/model", tokenizer, backend="vllm")
    assert eng.backend.llm.kwargs["logprobs_mode"] == "processed_logprobs"  # log-probs at the sampling T
    assert eng.context == 256
    params = SamplingParams(max_new_tokens=3, temperature=0.8, top_p=0.9, top_k=0, seed=4, n=2, top_logprobs=1,
                            stop_token_ids=[7])
    (group,) = eng.generate([[1, 2]], params, step=0, rank=0)
    prompts, sampling = eng.backend.llm.calls[0]
    assert prompts == [{"prompt_token_ids": [1, 2]}] * 2
    assert [sp.n for sp in sampling] == [1, 1] and len({sp.seed for sp in sampling}) == 2  # a seed per row
    assert sampling[0].top_k == -1 and sampling[0].temperature == 0.8 and sampling[0].max_tokens == 3
    assert 7 in sampling[0].stop_token_ids and tokenizer.eos_token_id in sampling[0].stop_token_ids
    c = group[0]
    assert c.token_ids == [5, 6] and c.finish_reason == "stop" and c.logprobs == pytest.approx([-0.55, -0.56])
    assert c.top_logprobs == [[(5, -0.55)], [(6, -0.56)]] and c.prompt_tokens == 2


def test_vllm_finish_reasons_and_missing_logprobs():
    out = FakeOutput([3, 4], [{3: FakeLogprob(-1.0)}, {}], "stop", stop_reason="###")
    res = row_result(out, 0)
    assert res.finish_reason == "stop_string" and res.logprobs[0] == -1.0 and res.logprobs[1] != res.logprobs[1]
    assert row_result(FakeOutput([], [], "abort"), 0).finish_reason == "cancelled"
    row = Row([1], seed=9, max_new_tokens=4, stop_ids=frozenset({2}), stop=("x",))
    sp = vllm_sampling(row, SamplingParams(temperature=0.0, top_k=3), types.SimpleNamespace(SamplingParams=dict))
    assert sp["seed"] == 9 and sp["stop"] == ["x"] and sp["top_k"] == 3 and sp["detokenize"]


def test_vllm_is_an_extra_not_a_dependency(monkeypatch, tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="pip install vllm"):
        GenerationEngine("some/model", tokenizer, backend="vllm")


def test_hf_backend_load_weights_updates_the_policy(model, tokenizer, prompts):
    import copy

    import torch

    eng = GenerationEngine(copy.deepcopy(model), tokenizer)
    params = SamplingParams(max_new_tokens=6)
    before = eng.generate(prompts[:2], params)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1.0)
    eng.load_weights(other.state_dict())
    after = eng.generate(prompts[:2], params)
    assert [g[0].token_ids for g in before] != [g[0].token_ids for g in after]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (a GPU extra)")
def test_real_vllm_backend_runs(tmp_path, model, tokenizer):  # pragma: no cover - GPU machines only
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    eng = GenerationEngine(str(tmp_path), tokenizer, backend="vllm")
    (group,) = eng.generate([[1, 2, 3]], SamplingParams(max_new_tokens=4, temperature=1.0, seed=0), step=0)
    assert 1 <= group[0].completion_tokens <= 4 and len(group[0].logprobs) == group[0].completion_tokens
