"""The one generation engine: token ids in, :class:`~.outputs.Completion` out, for every caller.

- **Offline batches** (evaluation, labeling batches, RL rollouts): :meth:`GenerationEngine.generate` runs the
  prompts in chunks of ``batch_size`` rows, in the caller's thread.
- **Concurrent requests** (the server): :meth:`GenerationEngine.submit` queues a request and returns a
  :class:`Request` handle (``result()``, ``stream()``, ``cancel()``, ``add_done_callback()``). One worker thread
  runs every queued request with the same :meth:`~.params.SamplingParams.batch_key` (up to ``batch_size`` rows)
  as one batch (dynamic batching); :func:`admission_wait` decides how long it first waits for more to arrive.
  transformers' continuous-batching API (``generate_batch``) was measured instead and rejected for CPU: 35
  generated tokens/s against 6,300 for one ``generate`` call on the same 32 prompts (transformers 5.24).

A lock serialises every use of the model, so direct calls and the worker may come from any thread. Seeding is
per completion, from (seed, step, rank, prompt index, sample index) (:func:`~.params.row_seed`): never the
global torch RNG. ``step=None`` uses the engine's own call counter, so successive calls draw fresh samples
while a fresh engine (a rerun) repeats them; ``rank=None`` is the data-parallel rank.
"""
from __future__ import annotations

import logging
import math
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ..models.tokens import pad_id
from .outputs import CANCELLED, Completion, Row, RowResult, finish
from .params import SamplingParams, row_seed, stop_token_ids

log = logging.getLogger(__name__)

# after a batch, the worker waits at most this fraction of that batch's run time for its clients to come back:
# measured at 32 clients on 2 cores, their next requests arrive 0.2-0.8 batch-times after the batch ends (the
# event loop answers and reads them one by one), and 0.25 still split them into part-batches
RETURN_WAIT_FRACTION = 1.0
# a first request this long after the last batch ended starts a new burst, not the same clients returning
RETURN_HORIZON_S = 1.0


def admission_plan(now: float, *, ended: float, took: float, expect: int, batch_size: int,
                   window_s: float) -> tuple[int, float]:
    """``(target_rows, deadline)``: the worker, holding a first request at ``now``, takes more as they arrive
    and starts the batch once ``target_rows`` rows are queued or at ``deadline``, whichever comes first.

    - Within :data:`RETURN_HORIZON_S` of the last batch's end (``ended``, after ``took`` seconds of running):
      the target is ``expect``, the rows that batch answered plus those queued while it ran (closed-loop clients
      send their next request when answered), and the deadline ``ended`` plus :data:`RETURN_WAIT_FRACTION` of
      ``took`` (at least ``window_s``): a request waits at most one more batch-time for company.
    - Otherwise (a new burst): a full batch or ``window_s`` after this first request, the plain batching window.

    Why not the plain window every time: the clients one batch answers send their next requests over tens of
    milliseconds (the event loop writes the answers one by one, each client parses its own), so a fixed 5 ms
    window starts the next batch with the first few while the rest wait a whole batch; the clients then split
    into alternating part-batches (measured at 32 clients: 12/20, 10/22, 9/23 rows, round after round), paying
    each batch's fixed costs twice (two batches of 16 rows cost 38 % more CPU per row than one of 32 on the demo
    model). And a lone client (target 1) no longer waits a window at all.
    """
    if now - ended <= RETURN_HORIZON_S:
        return expect, ended + max(window_s, RETURN_WAIT_FRACTION * took)
    return batch_size, now + window_s


def data_parallel_rank() -> int:
    """This process's rank in the process group (``RANK`` from torchrun before it is joined), else 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


class EngineClosed(RuntimeError):
    """The engine was closed while the request waited."""


class Request:
    """A queued request: its rows (``n`` per prompt), a result slot, a token stream and a cancel flag."""

    def __init__(self, rows: list[Row], params: SamplingParams, n: int):
        self.rows, self.params, self.n = rows, params, n
        self.cancelled = threading.Event()
        self._done = threading.Event()
        self._tokens: queue.Queue = queue.Queue()
        self._result: list[list[Completion]] | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()
        for j, row in enumerate(rows):
            row.cancelled = self.cancelled
            row.on_token = (lambda t, lp, j=j: self._tokens.put((j, t, lp)))

    def cancel(self) -> None:
        """Stop generating: a queued request is dropped, a running one ends at the next step (``cancelled``)."""
        self.cancelled.set()

    def result(self, timeout: float | None = None) -> list[list[Completion]]:
        """Per prompt, ``n`` completions (blocks until done)."""
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def add_done_callback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once the request has finished (at once, here, if it has): from the worker thread, so an
        event loop passes it on with ``loop.call_soon_threadsafe`` instead of polling :meth:`done`."""
        with self._callbacks_lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn()

    def done(self) -> bool:
        """Whether the request has finished (its result or error is set); never blocks."""
        return self._done.is_set()

    def poll(self) -> list[tuple[int, int, float]]:
        """The ``(row, token_id, logprob)`` produced since the last call, without blocking (for an event loop,
        which must not wait on a thread's queue)."""
        out = []
        while True:
            try:
                out.append(self._tokens.get_nowait())
            except queue.Empty:
                return out

    def stream(self, timeout: float | None = None) -> Iterator[tuple[int, int, float]]:
        """``(row, token_id, logprob)`` as tokens are produced; ends when the request does. ``row`` is
        ``prompt_index * n + sample``."""
        while True:
            try:
                yield self._tokens.get(timeout=0.05)
                continue
            except queue.Empty:
                pass
            if self._done.is_set() and self._tokens.empty():
                return
            if timeout is not None and not self._done.wait(0):
                timeout -= 0.05
                if timeout <= 0:
                    raise TimeoutError("no token in time")

    def _set(self, result: list[list[Completion]] | None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        with self._callbacks_lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn()
            except Exception:  # a caller's callback must not stop the worker that serves everyone
                log.exception("a request's done callback failed")


class GenerationEngine:
    """One model and tokenizer behind a lock and a request queue (see the module doc)."""

    def __init__(self, model, tokenizer, *, backend: str | object = "hf", batch_size: int = 32,
                 window_s: float = 0.005, rank: int | None = None):
        self.tokenizer = tokenizer
        self.stops = stop_token_ids(tokenizer)
        self.pad = pad_id(tokenizer, fallback=self.stops[0] if self.stops else 0)  # left padding is masked
        if backend == "hf":
            from .hf_backend import HFBackend
            self.backend = HFBackend(model, tokenizer, self.stops, self.pad)
        elif backend == "vllm":
            from .vllm_backend import VLLMBackend
            self.backend = VLLMBackend(model, tokenizer, self.stops)
        else:
            self.backend = backend  # anything with run(rows, params) and load_weights(state_dict)
        self.batch_size, self.window_s = batch_size, window_s
        self.rank = rank
        self.calls = 0
        self._lock = threading.Lock()  # the model: one batch at a time
        self._state_lock = threading.Lock()  # the counter and the worker, so submit never waits for a batch
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    @property
    def context(self) -> int:
        return self.backend.context

    # ------------------------------------------------------------------ rows

    def _rows(self, prompts: Sequence[Sequence[int]], params: SamplingParams, step: int | None,
              rank: int | None, first_index: int = 0) -> list[Row]:
        with self._state_lock:
            if step is None:
                step = self.calls
            self.calls += 1
        rank = self.rank if rank is None else rank
        if rank is None:
            rank = data_parallel_rank()
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        stops = frozenset(self.stops) | frozenset(params.stop_token_ids)
        rows = []
        for i, p in enumerate(prompts):
            # the context is not enforced here (RoPE models run past it); the server checks it per request
            limit = params.max_new_tokens or max(1, self.context - len(p))
            rows += [Row(list(p), row_seed(seed, step, rank, first_index + i, j), limit, stops, tuple(params.stop))
                     for j in range(params.n)]
        return rows

    def _run(self, rows: list[Row], params: SamplingParams) -> list[Completion]:
        with self._lock:
            results = self.backend.run(rows, params)
        return [finish(r, res, self.tokenizer) for r, res in zip(rows, results)]

    @staticmethod
    def _group(done: list[Completion], n: int) -> list[list[Completion]]:
        return [done[k:k + n] for k in range(0, len(done), n)]

    # ------------------------------------------------------------------ offline batches

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *, step: int | None = None,
                 rank: int | None = None, batch_size: int | None = None,
                 on_token: Callable[[int, int, float], None] | None = None) -> list[list[Completion]]:
        """Per prompt, ``params.n`` completions. ``on_token(row, token_id, logprob)`` streams them (row =
        prompt index * n + sample)."""
        rows = self._rows(prompts, params, step, rank)
        if on_token is not None:
            for k, row in enumerate(rows):
                row.on_token = (lambda t, lp, k=k: on_token(k, t, lp))
        size = max(1, (batch_size or self.batch_size)) * params.n
        done: list[Completion] = []
        for start in range(0, len(rows), size):
            done.extend(self._run(rows[start:start + size], params))
        return self._group(done, params.n)

    # ------------------------------------------------------------------ concurrent requests

    def submit(self, prompts: Sequence[Sequence[int]], params: SamplingParams, *, step: int | None = 0,
               rank: int | None = 0) -> Request:
        """Queue ``prompts`` for the worker (dynamic batching); returns at once. ``step`` and ``rank`` default
        to 0 so that a request with a seed is reproducible whatever ran before it."""
        if self._closed:
            raise EngineClosed("the generation engine is closed")
        req = Request(self._rows(prompts, params, step, rank), params, params.n)
        with self._state_lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="lmforge-generation", daemon=True)
                self._worker.start()
        self._queue.put(req)
        return req

    @property
    def pending(self) -> int:
        """Requests submitted but not yet taken into a batch by the worker (the server's queue depth)."""
        return self._queue.qsize()

    def _serve(self) -> None:
        pending: list[Request] = []
        ended, expect, took = -math.inf, 0, 0.0  # the last batch: its end, the rows expected next, its run time
        while True:
            if not pending:  # idle: block for the first request
                first = self._queue.get()
                if first is None:
                    return
                pending.append(first)
            target, deadline = admission_plan(time.monotonic(), ended=ended, took=took, expect=expect,
                                              batch_size=self.batch_size, window_s=self.window_s)
            if not self._gather(pending, target, deadline):
                return
            batch, pending = self._take(pending)
            start = time.monotonic()
            self._run_requests(batch)
            ended = time.monotonic()
            took = ended - start
            # what queued during the batch joins the leftovers now, so the next target counts it
            if not self._gather(pending, math.inf, time.monotonic()):
                return
            expect = min(self.batch_size, sum(len(r.rows) for r in batch) + sum(len(r.rows) for r in pending))

    def _gather(self, pending: list[Request], target: float, deadline: float) -> bool:
        """Move queued requests into ``pending`` until it holds ``target`` rows or ``deadline`` passes (a past
        deadline takes only what is already queued). False when the engine was closed meanwhile (``pending``
        failed)."""
        while sum(len(r.rows) for r in pending) < target:
            try:
                nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return True
            if nxt is None:
                self._fail(pending)
                return False
            pending.append(nxt)
        return True

    def _take(self, pending: list[Request]) -> tuple[list[Request], list[Request]]:
        """The first request, then every later one with the same batch key while the rows fit."""
        key, rows = pending[0].params.batch_key(), 0
        batch, rest = [], []
        for req in pending:
            if req.cancelled.is_set():
                self._finish_cancelled(req)
                continue
            if req.params.batch_key() == key and (not batch or rows + len(req.rows) <= self.batch_size):
                batch.append(req)
                rows += len(req.rows)
            else:
                rest.append(req)
        return batch, rest

    def _finish_cancelled(self, req: Request) -> None:
        res = [finish(r, RowResult(finish_reason=CANCELLED), self.tokenizer) for r in req.rows]
        req._set(self._group(res, req.n))

    def _run_requests(self, batch: list[Request]) -> None:
        if not batch:
            return
        rows = [r for req in batch for r in req.rows]
        try:
            done = self._run(rows, batch[0].params)
        except Exception as e:  # the callers see the error; the worker keeps serving
            for req in batch:
                req._set(None, e)
            return
        k = 0
        for req in batch:
            req._set(self._group(done[k:k + len(req.rows)], req.n))
            k += len(req.rows)

    def _fail(self, pending: list[Request]) -> None:
        for req in pending:
            req._set(None, EngineClosed("the generation engine was closed"))

    def close(self) -> None:
        """Stop the worker; requests still queued fail with :class:`EngineClosed`."""
        self._closed = True
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
            while not self._queue.empty():
                req = self._queue.get_nowait()
                if req is not None:
                    req._set(None, EngineClosed("the generation engine was closed"))

    def load_weights(self, state_dict) -> None:
        """Load updated policy weights into the backend without a restart (RL)."""
        with self._lock:
            self.backend.load_weights(state_dict)
