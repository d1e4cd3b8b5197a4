"""The OpenAI request bodies this server accepts and the JSON it answers with (no HTTP here).

Parameters it does not implement are refused with a 400 naming the parameter (:func:`refuse_unsupported`),
never silently ignored: a client that asks for ``tools`` or ``response_format`` would otherwise get an answer
that merely looks like it honoured them. A field sent with its "off" value (``null``, ``{}``, ``[]``, ``0``,
``false``) changes nothing and is accepted, as are the bookkeeping fields ``user``, ``metadata``, ``store`` and
``service_tier``.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .engine import Completion, SamplingParams

MAX_N = 8
MAX_STOPS = 4
SEED_RANGE = (-2**63, 2**64 - 1)  # what torch.manual_seed accepts
IGNORED = frozenset({"user", "metadata", "store", "service_tier"})


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def refuse_unsupported(req: BaseModel) -> None:
    """400 for the first extra field that is set to something other than its off value."""
    for name, value in (req.model_extra or {}).items():
        if name in IGNORED or value in (None, False, 0, "", [], {}):
            continue
        raise APIError(400, f"{name!r} is not supported by this server", name, "unsupported_parameter")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def plain(self) -> dict[str, str]:
        content = self.content
        if isinstance(content, list):
            if any(p.type != "text" for p in content):
                raise APIError(400, "only text content parts are supported", "messages")
            content = "".join(p.text or "" for p in content)
        return {"role": "system" if self.role == "developer" else self.role, "content": content or ""}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class Sampling(BaseModel):
    """The fields both endpoints share, mapped onto the one :class:`SamplingParams`."""
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def _params(self, max_tokens: int | None, logprobs: bool, top: int) -> SamplingParams:
        refuse_unsupported(self)
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options is only allowed with stream=true", "stream_options")
        if self.stream and logprobs:
            raise APIError(400, "logprobs are not supported with stream=true; send stream=false", "logprobs")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > MAX_STOPS:
            raise APIError(400, f"at most {MAX_STOPS} stop sequences", "stop")
        return SamplingParams(max_new_tokens=max_tokens, temperature=self.temperature, top_p=self.top_p,
                              seed=self.seed, stop=[s for s in stop if s], n=self.n, logprobs=logprobs,
                              top_logprobs=top)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)

    def params(self) -> SamplingParams:
        if self.top_logprobs and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs=true", "top_logprobs")
        return self._params(self.max_completion_tokens or self.max_tokens, self.logprobs, self.top_logprobs or 0)


class CompletionRequest(Sampling):
    """``/v1/completions``: ``prompt`` is a string or a list of strings; ``logprobs`` an int (top alternatives)."""
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for this endpoint
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    best_of: int | None = Field(None, ge=1)

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts:
            raise APIError(400, "prompt: at least one prompt is needed", "prompt")
        if len(prompts) * self.n > MAX_N * 4:
            raise APIError(400, f"at most {MAX_N * 4} completions (prompts times n) per request", "prompt")
        return prompts

    def params(self) -> SamplingParams:
        if self.echo:
            raise APIError(400, "'echo' is not supported by this server", "echo", "unsupported_parameter")
        if self.best_of not in (None, 1, self.n):
            raise APIError(400, "'best_of' other than n is not supported by this server", "best_of",
                           "unsupported_parameter")
        return self._params(self.max_tokens, self.logprobs is not None, self.logprobs or 0)


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_choice(index: int, c: Completion) -> dict[str, Any]:
    logprobs = None
    if c.logprobs is not None:
        logprobs = {"content": [{**_logprob_entry(t.token, t.logprob),
                                 "top_logprobs": [_logprob_entry(tok, lp) for tok, lp in t.top]}
                                for t in c.logprobs], "refusal": None}
    return {"index": index, "message": {"role": "assistant", "content": c.text, "refusal": None},
            "logprobs": logprobs, "finish_reason": c.finish_reason}


def text_choice(index: int, c: Completion) -> dict[str, Any]:
    """A ``/v1/completions`` choice; ``logprobs`` in that endpoint's legacy shape (parallel lists)."""
    logprobs = None
    if c.logprobs is not None:
        offsets, at = [], 0
        for t in c.logprobs:
            offsets.append(at)
            at += len(t.token)
        logprobs = {"tokens": [t.token for t in c.logprobs], "token_logprobs": [t.logprob for t in c.logprobs],
                    "top_logprobs": [dict(t.top) for t in c.logprobs], "text_offset": offsets}
    return {"index": index, "text": c.text, "logprobs": logprobs, "finish_reason": c.finish_reason}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
