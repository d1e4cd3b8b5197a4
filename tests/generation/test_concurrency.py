"""Concurrent callers: one model use at a time, dynamic batching that does not change samples, streaming,
cancellation."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lmforge.generation import EngineClosed, GenerationEngine, SamplingParams

HOT = SamplingParams(max_new_tokens=8, temperature=1.2, seed=5)


class CountingBackend:
    """The HF backend, counting its batches and checking that no two run at once."""

    def __init__(self, inner):
        self.inner, self.batches, self.active, self.overlap = inner, [], 0, False
        self.context = inner.context

    def run(self, rows, params):
        self.active += 1
        self.overlap |= self.active > 1
        self.batches.append(len(rows))
        try:
            return self.inner.run(rows, params)
        finally:
            self.active -= 1

    def load_weights(self, state_dict):
        self.inner.load_weights(state_dict)


@pytest.fixture
def counting(model, tokenizer):
    from lmforge.generation.hf_backend import HFBackend
    from lmforge.generation.params import stop_token_ids
    from lmforge.models.tokens import pad_id

    stops = stop_token_ids(tokenizer)
    backend = CountingBackend(HFBackend(model, tokenizer, stops, pad_id(tokenizer, fallback=0)))
    eng = GenerationEngine(model, tokenizer, backend=backend, window_s=0.3)
    yield eng, backend
    eng.close()


def test_concurrent_requests_are_batched_and_get_their_own_samples(counting, prompts):
    eng, backend = counting
    alone = [eng.submit([p], HOT).result()[0] for p in prompts]  # one at a time
    assert backend.batches == [1] * len(prompts)
    backend.batches.clear()
    barrier = threading.Barrier(len(prompts))

    def call(p):
        barrier.wait()
        return eng.submit([p], HOT).result(timeout=60)[0]

    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(call, prompts))
    assert len(backend.batches) < len(prompts) and sum(backend.batches) == len(prompts)
    assert [[c.token_ids for c in g] for g in together] == [[c.token_ids for c in g] for g in alone]


def test_different_settings_are_not_mixed_in_one_batch(counting, prompts):
    eng, backend = counting
    reqs = [eng.submit([p], HOT if i % 2 else HOT.model_copy(update={"temperature": 0.0}))
            for i, p in enumerate(prompts)]
    outs = [r.result(timeout=60) for r in reqs]
    assert len(backend.batches) == 2 and sorted(backend.batches) == [2, 3]
    assert all(len(o) == 1 for o in outs)


def test_direct_calls_and_queued_requests_from_many_threads(counting, prompts):
    eng, backend = counting
    params = SamplingParams(max_new_tokens=6)
    expected = [c.token_ids for (c,) in eng.generate(prompts, params)]

    def worker(k):
        if k % 2:
            return [c.token_ids for (c,) in eng.generate(prompts, params)]
        return [eng.submit([p], params).result(timeout=60)[0][0].token_ids for p in prompts]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(worker, range(6)))
    assert all(r == expected for r in results) and not backend.overlap


def test_streaming_delivers_the_tokens_as_produced(engine, prompts):
    params = SamplingParams(max_new_tokens=8, stop_token_ids=[])
    seen = []
    (c,), = engine.generate(prompts[:1], params, on_token=lambda row, t, lp: seen.append((row, t, lp)))
    assert [t for _, t, _ in seen] == c.token_ids and [lp for *_, lp in seen] == c.logprobs
    req = engine.submit(prompts[:2], params.model_copy(update={"n": 2}))
    streamed = list(req.stream(timeout=60))
    groups = req.result()
    for row in range(4):
        assert [t for r, t, _ in streamed if r == row] == groups[row // 2][row % 2].token_ids


def test_cancel_ends_a_running_request(engine, prompts):
    long = SamplingParams(max_new_tokens=300)
    runs = [(p, c) for p, ((c,),) in ((p, engine.generate([p], long)) for p in prompts)]
    p, full = next((p, c) for p, c in runs if c.finish_reason == "length")  # greedy: no EOS in 300 tokens
    req = engine.submit([p], long)
    next(req.stream(timeout=60))  # it is running
    req.cancel()
    (c,), = req.result(timeout=60)
    assert c.finish_reason == "cancelled" and not c.finished and c.completion_tokens < 300
    assert c.token_ids == full.token_ids[:c.completion_tokens]


def test_a_request_cancelled_while_queued_never_runs(counting, prompts):
    eng, backend = counting
    entered, gate = threading.Event(), threading.Event()
    inner_run = backend.run

    def gated(rows, params):
        entered.set()
        assert gate.wait(60)
        return inner_run(rows, params)

    backend.run = gated
    busy = eng.submit(prompts[:1], SamplingParams(max_new_tokens=2))
    assert entered.wait(60)  # the worker is inside the first batch, so the next request waits in the queue
    queued = eng.submit(prompts[1:2], SamplingParams(max_new_tokens=2))
    queued.cancel()
    gate.set()
    busy.result(timeout=60)
    (q,), = queued.result(timeout=60)
    assert q.finish_reason == "cancelled" and q.token_ids == [] and backend.batches == [1]


def test_a_closed_engine_refuses_requests(model, tokenizer, prompts):
    eng = GenerationEngine(model, tokenizer)
    eng.submit(prompts[:1], SamplingParams(max_new_tokens=2)).result(timeout=60)
    eng.close()
    with pytest.raises(EngineClosed):
        eng.submit(prompts[:1], SamplingParams(max_new_tokens=2))
