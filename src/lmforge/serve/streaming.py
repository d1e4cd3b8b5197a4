"""Server-sent events for ``stream=true``: the engine's tokens as OpenAI chunks, as they are generated.

Each choice's text is decoded from all of its tokens so far and only the new part is sent, so a character
split over byte-level tokens is sent whole (text ending in U+FFFD waits for its next token). With stop strings
the last ``longest stop - 1`` characters are held back until they can no longer start one, so no text after a
stop string ever leaves the server; the final chunk of each choice sends whatever the finished completion (cut
by :func:`lmforge.generation.outputs.finish`, the one cut) has beyond what was sent.

The generator runs on the event loop and polls the request (:meth:`Request.poll`) rather than waiting on a
thread; when the client goes away Starlette cancels it, and ``finally`` cancels the request, which frees its
batch row at the next decode step and its slot at once.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..generation.engine import Request
from .engine import ChatEngine, SamplingParams
from .protocol import APIError, usage

POLL_S = 0.005


def event(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class Releaser:
    """The text of one choice that is safe to send so far (module doc)."""

    def __init__(self, tokenizer, stops: list[str]):
        self.tokenizer, self.stops = tokenizer, stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.ids: list[int] = []
        self.sent = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        hits = [text.find(s) for s in self.stops if s in text]
        safe = text[:min(hits)] if hits else text[:len(text) - self.hold] if self.hold else text
        return self._release(safe)

    def final(self, text: str) -> str:
        return self._release(text)

    def _release(self, safe: str) -> str:
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent):], safe
        return delta


async def stream(engine: ChatEngine, handle: Request, params: SamplingParams, prompt_tokens: int,
                 chunk: Callable[[int, str | None, str | None, bool], dict[str, Any]], include_usage: bool,
                 slot) -> AsyncIterator[str]:
    """SSE lines for ``handle``; ``chunk(index, text, finish_reason, first)`` builds one endpoint's chunk;
    ``slot`` is the entered request slot, exited when the stream ends however it ends."""
    rows = len(handle.rows)
    out = [Releaser(engine.tokenizer, params.stop) for _ in range(rows)]
    deadline = time.monotonic() + engine.request_timeout_s
    finished = False
    try:
        for j in range(rows):
            yield event(chunk(j, None, None, True))
        while not handle.done():
            if time.monotonic() > deadline:
                handle.cancel()
                finished = True
                engine.metrics.count("timeouts")
                yield event(APIError(504, f"the request ran past the server's timeout of "
                                          f"{engine.request_timeout_s:g} s", code="timeout",
                                     type="timeout_error").body())
                yield event("[DONE]")
                return
            for j, token, _ in handle.poll():
                delta = out[j].add(token)
                if delta:
                    yield event(chunk(j, delta, None, False))
            await asyncio.sleep(POLL_S)
        for j, token, _ in handle.poll():  # what arrived with the end
            delta = out[j].add(token)
            if delta:
                yield event(chunk(j, delta, None, False))
        try:
            groups = handle.result(0)
        except Exception as e:  # noqa: BLE001 - the client gets it as an error event; the server stays up
            engine.metrics.count("errors")
            yield event(APIError(500, f"generation failed: {e}", type="server_error").body())
            yield event("[DONE]")
            return
        done = [engine.view(c, params) for group in groups for c in group]
        for j, c in enumerate(done):
            delta = out[j].final(c.text)
            if delta:
                yield event(chunk(j, delta, None, False))
            yield event(chunk(j, None, c.finish_reason, False))
        used = sum(c.tokens for c in done)
        engine.metrics.tokens(prompt_tokens, used)
        if include_usage:
            yield event({**chunk(0, None, None, False), "choices": [], "usage": usage(prompt_tokens, used)})
        yield event("[DONE]")
        finished = True
    finally:
        if not finished and not handle.done():
            handle.cancel()
            engine.metrics.count("cancelled")
        slot.__exit__(None, None, None)
