"""Counters for ``GET /metrics`` (Prometheus text format): requests, rejections, queue depth, tokens/s.

Tokens/s is over a sliding window (``window_s``, 60 s): completion tokens of the requests that finished in it,
divided by the window (or by the server's age while it is younger), so an idle server reads 0.
"""
from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_S = 60.0


class Metrics:
    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.started = time.monotonic()
        self.counts = {"requests": 0, "rejected": 0, "timeouts": 0, "cancelled": 0, "errors": 0}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._recent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def tokens(self, prompt: int, completion: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self._recent.append((now, completion))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def tokens_per_s(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            total = sum(n for _, n in self._recent)
        return total / max(min(self.window_s, now - self.started), 1e-3)

    def render(self, in_flight: int, queued: int) -> str:
        """The Prometheus exposition text."""
        lines = []

        def metric(name: str, kind: str, help_: str, value: float) -> None:
            lines.extend([f"# HELP lmforge_{name} {help_}", f"# TYPE lmforge_{name} {kind}",
                          f"lmforge_{name} {value:g}"])

        with self._lock:
            counts, prompt, completion = dict(self.counts), self.prompt_tokens, self.completion_tokens
        metric("requests_total", "counter", "generation requests admitted", counts["requests"])
        metric("requests_rejected_total", "counter", "requests answered 429 (queue full)", counts["rejected"])
        metric("requests_timed_out_total", "counter", "requests that ran past the request timeout",
               counts["timeouts"])
        metric("requests_cancelled_total", "counter", "streams closed by the client before the end",
               counts["cancelled"])
        metric("requests_failed_total", "counter", "requests that failed in generation", counts["errors"])
        metric("requests_in_flight", "gauge", "admitted requests not yet finished", in_flight)
        metric("queue_depth", "gauge", "requests waiting for the generation worker", queued)
        metric("prompt_tokens_total", "counter", "prompt tokens of finished requests", prompt)
        metric("completion_tokens_total", "counter", "generated tokens of finished requests", completion)
        metric("generation_tokens_per_second", "gauge", f"generated tokens/s over the last {self.window_s:g} s",
               self.tokens_per_s())
        return "\n".join(lines) + "\n"
