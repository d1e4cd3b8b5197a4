"""A minimal OpenAI-compatible server for one local model (``lmforge serve``).

- ``GET /v1/models``, ``GET /v1/models/{id}``: the one served model
- ``POST /v1/chat/completions``: non-streaming; ``messages`` through the model's chat template;
  ``temperature`` (0 = greedy), ``top_p``, ``max_tokens`` (or ``max_completion_tokens``), ``n``, ``seed``,
  ``stop``; ``logprobs`` + ``top_logprobs`` (0-20) for the generated tokens (of the distribution each token
  was sampled from, after temperature and top-p; the model's own for temperature 0); ``usage`` counts
- ``GET /health``; ``/docs``, ``/redoc`` and ``/openapi.json`` only with ``docs=True``

Every error, including malformed JSON, unknown routes and the limits of :mod:`.limits` (413 for a body over
``max_body_bytes``, 408 for a body slower than ``body_timeout_s``, 400 for a prompt that cannot fit the context),
uses OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so official clients raise their usual
exceptions. Unknown request fields are ignored, as OpenAI-compatible servers commonly do.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .engine import ChatEngine, Completion, EngineError, SamplingParams
from .limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES, BodyLimits, longest_token_chars, max_prompt_chars

MAX_N = 8
SEED_RANGE = (-2**63, 2**64 - 1)  # what torch.manual_seed accepts


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status, headers=headers)


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
    temperature: float = Field(1.0, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
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


def create_app(engine: ChatEngine, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, docs: bool = False) -> FastAPI:
    """The HTTP API in front of ``engine`` (see the module doc)."""
    app = FastAPI(title="lmforge OpenAI-compatible server", version="1", docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
    app.state.engine = engine
    token_chars = longest_token_chars(engine.tokenizer)
    prompt_chars = max_prompt_chars(engine.tokenizer, engine.context)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            return APIError(400, f"the body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])} "
                                 f"at character {err['loc'][-1]}").response()
        loc = ".".join(str(p) for p in err["loc"] if p != "body")
        return APIError(400, f"{loc}: {err['msg']}" if loc else err["msg"], loc or None).response()

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI's own errors (unknown route, wrong method, a body it cannot parse, the body limits), which it
        # would answer as {"detail": ...}
        message, code = str(exc.detail), None
        if exc.status_code == 413:
            message, code = f"the request body is larger than this server's limit of {max_body_bytes} bytes", \
                "request_too_large"
        elif exc.status_code == 400 and exc.__cause__ is not None:  # e.g. RecursionError from deep nesting
            message = f"the body could not be parsed as JSON: {exc.__cause__}"
        headers = dict(exc.headers or {})
        if exc.status_code in (408, 413):  # the rest of the body is unread: the connection cannot be reused
            headers["Connection"] = "close"
        return APIError(exc.status_code, message, code=code).response(headers)

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
        messages = [m.plain() for m in req.messages]
        chars = sum(len(m["content"]) for m in messages)
        if chars > prompt_chars:  # refused before the tokeniser spends seconds and gigabytes on it
            raise APIError(400, f"the messages have {chars} characters, more than fit in this model's context of "
                                f"{engine.context} tokens (at most {prompt_chars} characters)", "messages",
                           "context_length_exceeded")
        # a stop sequence longer than the completion can be never matches: dropping it changes no answer, and
        # spares generation its precomputation over the vocabulary (which grows with the string's length: 90 MB
        # for 50,000 characters with the test model's 500-token vocabulary)
        budget = params.max_new_tokens or min(engine.context, getattr(engine, "default_max_tokens", engine.context))
        params.stop = [s for s in params.stop if len(s) <= budget * token_chars]
        try:
            completions, prompt_tokens = engine.complete(messages, params)
        except EngineError as e:
            raise APIError(400, e.message, e.param) from None
        used = sum(c.tokens for c in completions)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": engine.name, "system_fingerprint": None,
                "choices": [_choice(i, c) for i, c in enumerate(completions)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used,
                          "total_tokens": prompt_tokens + used}}

    return app
