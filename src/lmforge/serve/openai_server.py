"""A minimal OpenAI-compatible server for one local model (``lmforge serve``).

- ``GET /v1/models``, ``GET /v1/models/{id}``: the one served model
- ``POST /v1/chat/completions``: non-streaming; ``messages`` through the model's chat template;
  ``temperature`` (0 = greedy), ``top_p``, ``max_tokens`` (or ``max_completion_tokens``), ``n``, ``seed``,
  ``stop``; ``logprobs`` + ``top_logprobs`` (0-20) for the generated tokens (of the distribution each token
  was sampled from, after temperature and top-p; the model's own for temperature 0); ``usage`` counts
- ``GET /health``

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so official clients raise
their usual exceptions. Unknown request fields are ignored, as OpenAI-compatible servers commonly do.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .engine import ChatEngine, Completion, EngineError, SamplingParams

MAX_N = 8


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


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


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int | None = None
    stop: str | list[str] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stream: bool = False

    def params(self) -> SamplingParams:
        if self.stream:
            raise APIError(400, "streaming is not supported by this server yet; send stream=false", "stream")
        if self.top_logprobs and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs=true", "top_logprobs")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stop) > 4:
            raise APIError(400, "at most 4 stop sequences", "stop")
        return SamplingParams(max_new_tokens=self.max_completion_tokens or self.max_tokens,
                              temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              stop=[s for s in stop if s], n=self.n, logprobs=self.logprobs,
                              top_logprobs=self.top_logprobs or 0)


def _logprob_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _choice(index: int, c: Completion) -> dict[str, Any]:
    logprobs = None
    if c.logprobs is not None:
        logprobs = {"content": [{**_logprob_entry(t.token, t.logprob),
                                 "top_logprobs": [_logprob_entry(tok, lp) for tok, lp in t.top]}
                                for t in c.logprobs], "refusal": None}
    return {"index": index, "message": {"role": "assistant", "content": c.text, "refusal": None},
            "logprobs": logprobs, "finish_reason": c.finish_reason}


def create_app(engine: ChatEngine) -> FastAPI:
    """The HTTP API in front of ``engine`` (see the module doc)."""
    app = FastAPI(title="lmforge OpenAI-compatible server", version="1")
    app.state.engine = engine

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p != "body")
        return APIError(400, f"{loc}: {err['msg']}" if loc else err["msg"], loc or None).response()

    def model_card() -> dict[str, Any]:
        return {"id": engine.name, "object": "model", "created": engine.created, "owned_by": "lmforge"}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": engine.name}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str) -> dict[str, Any]:
        if model_id != engine.name:
            raise APIError(404, f"the model {model_id!r} does not exist (this server serves {engine.name!r})",
                           "model", "model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatCompletionRequest) -> dict[str, Any]:
        if req.model != engine.name:
            raise APIError(404, f"the model {req.model!r} does not exist (this server serves {engine.name!r})",
                           "model", "model_not_found")
        params = req.params()
        try:
            completions, prompt_tokens = engine.complete([m.plain() for m in req.messages], params)
        except EngineError as e:
            raise APIError(400, e.message, e.param) from None
        used = sum(c.tokens for c in completions)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": engine.name, "system_fingerprint": None,
                "choices": [_choice(i, c) for i, c in enumerate(completions)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used,
                          "total_tokens": prompt_tokens + used}}

    return app
