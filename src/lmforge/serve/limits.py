"""Limits that keep one client from tying up ``lmforge serve``: checked before a request reaches the model.

- body size and read time: :class:`BodyLimits` answers 413 from the ``Content-Length`` header before reading the
  body, or as soon as a chunked body passes the limit, and 408 when a body has not fully arrived in time (a
  client that sends its headers and then a byte now and then would otherwise hold a connection for ever);
- prompt length: :func:`max_prompt_chars` bounds the characters a prompt may have before it is tokenised, and
  :func:`longest_token_chars` the characters a completion of so many tokens can have (a longer stop sequence
  can never match, so it is dropped before generation prepares it against the whole vocabulary).

FastAPI's own ``max_body_size`` is not used: for a too-large ``Content-Length`` Starlette replaces whatever the
app answers with a plain-text 413, and this server must answer in OpenAI's error shape.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # a 128k-token context of English is about 0.5 MB of JSON
DEFAULT_BODY_TIMEOUT_S = 30.0


class BodyLimits:
    """Pure ASGI middleware: ``receive`` raises ``HTTPException`` 413 once the body is (or is declared) larger
    than ``max_bytes``, and 408 once it is still incomplete ``timeout_s`` seconds after the request arrived.

    The app's exception handlers then answer, and since FastAPI reads the body before it parses it or calls the
    endpoint, neither happens. The deadline covers the whole body, not each chunk, so a trickle of bytes cannot
    extend it. Once the last chunk has arrived ``receive`` is passed through untouched: later calls wait for a
    disconnect, which may rightly take as long as the response does.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        if max_bytes < 0 or not timeout_s > 0:
            raise ValueError(f"need max_bytes >= 0 and timeout_s > 0, not {max_bytes} and {timeout_s}")
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # imported here, not above, so that the CLI can read the defaults without loading asyncio and Starlette
        import asyncio

        from starlette.exceptions import HTTPException

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        declared = _content_length(scope)
        received, complete = 0, False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            if declared is not None and declared > self.max_bytes:
                raise HTTPException(413, f"the body has {declared} bytes; the limit is {self.max_bytes}")
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s; "
                                         "send it at once") from None
            if message["type"] != "http.request":
                complete = True
                return message
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, f"the body has more than {self.max_bytes} bytes")
            complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    from starlette.datastructures import Headers

    try:
        return int(Headers(scope=scope).get("content-length", ""))
    except ValueError:  # absent (a chunked body), or malformed, which the HTTP server has refused already
        return None


def longest_token_chars(tokenizer) -> int:
    """An upper bound on the characters one token decodes to: its longest vocabulary entry.

    No token decodes to more characters than its entry has (a byte-level entry spells one byte per character,
    and a character is at least one byte; a SentencePiece entry spells its text, or ``<0xNN>`` for one byte).
    """
    return max(max((len(t) for t in tokenizer.get_vocab()), default=1), 1)


def max_prompt_chars(tokenizer, context: int) -> int:
    """The most characters of message text that can still fit in ``context`` tokens: text longer than
    ``context`` times :func:`longest_token_chars` needs more tokens, and can be refused without tokenising it."""
    return context * longest_token_chars(tokenizer)
