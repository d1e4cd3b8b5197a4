"""When the worker starts a batch (admission_plan), closed-loop clients kept together, a lone client not kept
waiting, and done callbacks (what lets an event loop wait without polling)."""
from __future__ import annotations

import threading
import time

import pytest

from lmforge.generation import GenerationEngine, SamplingParams
from lmforge.generation.engine import RETURN_HORIZON_S, RETURN_WAIT_FRACTION, admission_plan
from lmforge.generation.outputs import RowResult

P = SamplingParams(max_new_tokens=2)


def test_admission_plan_from_idle_is_the_plain_window():
    assert admission_plan(100.0, ended=-1e9, took=0.0, expect=0, batch_size=32, window_s=0.005) == (32, 100.005)
    # a batch long ago: its clients are not "coming back" any more
    late = 10.0 + RETURN_HORIZON_S + 0.1
    assert admission_plan(late, ended=10.0, took=0.5, expect=8, batch_size=32, window_s=0.01) == (32, late + 0.01)


def test_admission_plan_after_a_batch_waits_for_its_clients_at_most_a_batch_time():
    target, deadline = admission_plan(10.05, ended=10.0, took=0.4, expect=24, batch_size=32, window_s=0.005)
    assert target == 24 and deadline == pytest.approx(10.0 + RETURN_WAIT_FRACTION * 0.4)
    # a very short batch still allows the window
    assert admission_plan(10.001, ended=10.0, took=0.0001, expect=3, batch_size=32, window_s=0.005)[1] == \
        pytest.approx(10.005)


class FakeBackend:
    """Each batch takes ``seconds``; records (batch rows, when it started)."""

    context = 512

    def __init__(self, seconds: float):
        self.seconds, self.batches = seconds, []

    def run(self, rows, params):
        self.batches.append((len(rows), time.monotonic()))
        time.sleep(self.seconds)
        return [RowResult(token_ids=[5], logprobs=[-0.1]) for _ in rows]

    def load_weights(self, state_dict):
        pass


@pytest.fixture
def fake(tokenizer):
    def make(seconds: float, window_s: float) -> tuple[GenerationEngine, FakeBackend]:
        backend = FakeBackend(seconds)
        eng = GenerationEngine(None, tokenizer, backend=backend, window_s=window_s)
        made.append(eng)
        return eng, backend

    made: list[GenerationEngine] = []
    yield make
    for eng in made:
        eng.close()


def test_closed_loop_clients_returning_at_different_times_share_one_batch(fake):
    """8 clients, each sending its next request 0-70 ms after its answer (as an event loop answering them one by
    one would), against 0.3 s batches: after the first round every batch holds all 8 (a 5 ms window alone split
    them into part-batches for ever)."""
    eng, backend = fake(seconds=0.3, window_s=0.005)
    start = threading.Barrier(8)

    def client(i: int) -> None:
        start.wait()
        for _ in range(4):
            eng.submit([[1, 2, 3]], P).result(timeout=60)
            time.sleep(0.01 * i)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    sizes = [n for n, _ in backend.batches]
    assert sum(sizes) == 32 and sizes[-3:] == [8, 8, 8], sizes


def test_a_lone_client_does_not_wait_the_window_between_its_requests(fake):
    eng, backend = fake(seconds=0.01, window_s=2.0)
    submitted = []
    for _ in range(3):
        submitted.append(time.monotonic())
        eng.submit([[1, 2]], P).result(timeout=60)
    started = [t for _, t in backend.batches]
    assert started[0] - submitted[0] >= 2.0  # from idle: the plain window
    assert all(s - t < 1.0 for s, t in zip(started[1:], submitted[1:]))  # coming back: at once


def test_done_callbacks(fake):
    eng, backend = fake(seconds=0.3, window_s=0.001)  # registered long before the batch ends
    calls, called = [], threading.Event()

    def bad():
        raise RuntimeError("a caller's bug")

    req = eng.submit([[1]], P)
    req.add_done_callback(bad)  # a failing callback is logged; the worker keeps serving
    req.add_done_callback(lambda: (calls.append(("first", req.done())), called.set()))
    assert calls == [] and called.wait(60) and calls == [("first", True)]
    req.add_done_callback(lambda: calls.append(("late", req.done())))  # already done: called at once, here
    assert calls == [("first", True), ("late", True)]
    assert eng.submit([[2]], P).result(timeout=60)[0][0].token_ids == [5]
