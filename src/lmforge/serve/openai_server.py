"""An OpenAI-compatible server for local models (``lmforge serve``).

- ``GET /v1/models``, ``GET /v1/models/{id}``: the served models (one, or a base and its adapters,
  :mod:`.adapters`); a request's ``model`` picks the engine that answers it
- ``POST /v1/chat/completions``: ``messages`` through the model's chat template; ``POST /v1/completions``:
  ``prompt`` (a string or a list of strings) as it is. Both take ``temperature`` (0 = greedy), ``top_p``,
  ``max_tokens`` (chat also ``max_completion_tokens``), ``n``, ``seed`` (same seed, same answer), ``stop``,
  ``stream`` (server-sent events, :mod:`.streaming`; ``stream_options.include_usage``), ``logprobs`` (chat:
  ``logprobs`` + ``top_logprobs`` 0-20; completions: ``logprobs`` 0-5, non-streaming), ``usage`` counts.
  Log-probabilities are of the distribution each token was sampled from (after temperature and top-p; the
  model's own for temperature 0). Parameters it does not implement (``tools``, ``response_format``,
  ``logit_bias``, ...) get a 400 naming them (:func:`.protocol.refuse_unsupported`).
- ``POST /v1/rewards`` (an lmforge extension, with ``reward_models``): scores of responses by a trained reward
  model, read as ``lmforge rm score`` reads it (:mod:`.rewards`)
- ``GET /``: a chat page (:mod:`.page`); ``GET /health``; ``GET /metrics`` (Prometheus text: requests,
  rejections, queue depth, tokens/s);
  ``/docs``, ``/redoc`` and ``/openapi.json`` only with ``docs=True``

Requests are batched by the one generation engine (a worker runs every queued request with compatible
settings as one batch; later ones join the next batch). A request holds one of ``engine.max_queue`` slots
from admission to its end: with all taken the answer is 429, a request running past
``engine.request_timeout_s`` is cancelled and answered 504, and a stream the client closes is cancelled (its
row stops at the next decode step, its slot is free at once). With ``api_key`` set, ``/v1/*`` needs
``Authorization: Bearer KEY`` (401 otherwise).

Every error, including malformed JSON, unknown routes and the limits of :mod:`.limits` (413 for a body over
``max_body_bytes``, 408 for a body slower than ``body_timeout_s``, 400 for a prompt that cannot fit the context),
uses OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so official clients raise their usual
exceptions.
"""
from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException

from .engine import Admission, Busy, ChatEngine, EngineError, SamplingParams
from .limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES, BodyLimits, longest_token_chars, max_prompt_chars
from .page import add_page
from .protocol import APIError, ChatCompletionRequest, CompletionRequest, chat_choice, text_choice, usage
from .rewards import RewardService, add_reward_routes
from .streaming import stream


class KeyCheck:
    """Pure ASGI middleware (a ``BaseHTTPMiddleware`` would wrap streams and hide client disconnects): every
    ``/v1`` request needs ``Authorization: Bearer KEY``, else 401 before the body is read."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1"):
            headers = dict(scope.get("headers") or [])
            scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                answer = error_response(APIError(401, "a missing or wrong API key: send Authorization: Bearer KEY",
                                                 code="invalid_api_key"))
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def create_app(engines: ChatEngine | Sequence[ChatEngine], *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, docs: bool = False,
               api_key: str | None = None, reward_models: Sequence[RewardService] = (),
               admission: Admission | None = None) -> FastAPI:
    """The HTTP API in front of ``engines`` (one, or several sharing one admission; see the module doc), and
    ``POST /v1/rewards`` over ``reward_models``; ``admission``: the request slots when no chat engine brings its
    own (a reward-model-only server)."""
    engines = [engines] if isinstance(engines, ChatEngine) else list(engines)
    by_name = {e.name: e for e in engines}
    if not engines and not reward_models:
        raise ValueError("nothing to serve: give a chat model or a reward model")
    if len(by_name) != len(engines) or len({id(e.admission) for e in engines}) > 1:
        raise ValueError("the served models need distinct names and one shared Admission")
    # a reward-model-only server (lmforge serve RM_FOLDER) has no chat engine: its own slots
    first = engines[0] if engines else None
    admission = first.admission if first else (admission or Admission())
    app = FastAPI(title="lmforge OpenAI-compatible server", version="1", docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
    if api_key:
        app.add_middleware(KeyCheck, key=api_key)
    app.state.engine, app.state.engines = first, by_name
    # per model: its tokenizer's longest token, and the prompt characters its context can hold
    longest = {id(e.tokenizer): longest_token_chars(e.tokenizer) for e in engines}  # adapters share tokenizers
    token_chars = {e.name: longest[id(e.tokenizer)] for e in engines}
    prompt_chars = {e.name: max_prompt_chars(e.tokenizer, e.context) for e in engines}
    add_page(app)
    if reward_models:
        add_reward_routes(app, list(reward_models), admission.slot)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            why = err.get("ctx", {}).get("error", err["msg"])
            return error_response(APIError(400, f"the body is not valid JSON: {why} at character {err['loc'][-1]}"))
        loc = ".".join(str(p) for p in err["loc"] if p != "body")
        return error_response(APIError(400, f"{loc}: {err['msg']}" if loc else err["msg"], loc or None))

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
        return error_response(APIError(exc.status_code, message, code=code), headers)

    def model_card(engine: ChatEngine) -> dict[str, Any]:
        return {"id": engine.name, "object": "model", "created": engine.created, "owned_by": "lmforge"}

    def known(model_id: str) -> ChatEngine:
        if model_id not in by_name:
            names = ", ".join(repr(n) for n in by_name)
            serves = f"this server serves {names}" if by_name else \
                "this server serves no chat model, only reward models at POST /v1/rewards: " + \
                ", ".join(repr(r.name) for r in reward_models)
            raise APIError(404, f"the model {model_id!r} does not exist ({serves})", "model", "model_not_found")
        return by_name[model_id]

    @app.get("/health")
    def health() -> dict[str, Any]:
        rms = {"reward_models": [r.name for r in reward_models]} if reward_models else {}
        return {"status": "ok", "model": first.name if first else None, "models": list(by_name), **rms}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(admission.metrics.render(admission.in_flight, sum(e.queued for e in engines)))

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(e) for e in engines]}

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str) -> dict[str, Any]:
        return model_card(known(model_id))

    def bounded(engine: ChatEngine, params: SamplingParams, chars: int, param: str) -> SamplingParams:
        most = prompt_chars[engine.name]
        if chars > most:  # refused before the tokeniser spends seconds and gigabytes on it
            raise APIError(400, f"the {param} has {chars} characters, more than fit in this model's context of "
                                f"{engine.context} tokens (at most {most} characters)", param,
                           "context_length_exceeded")
        # a stop sequence longer than the completion can be never matches: dropping it changes no answer, and
        # spares generation its precomputation over the vocabulary (which grows with the string's length: 90 MB
        # for 50,000 characters with the test model's 500-token vocabulary)
        budget = params.max_new_tokens or min(engine.context, engine.default_max_tokens)
        params.stop = [s for s in params.stop if len(s) <= budget * token_chars[engine.name]]
        return params

    async def run(engine: ChatEngine, prompts: list[list[int]], params: SamplingParams, req, param: str, obj: str,
                  choice):
        """Admit, submit and answer (JSON, or SSE when ``req.stream``)."""
        try:
            params = engine.check(prompts, params, param)
        except EngineError as e:
            raise APIError(400, e.message, e.param) from None
        slot = engine.slot()
        try:
            slot.__enter__()
        except Busy as e:
            raise APIError(429, str(e), code="queue_full", type="rate_limit_error") from None
        try:
            handle = engine.submit(prompts, params)
        except Exception:
            slot.__exit__(None, None, None)
            raise
        rid = ("chatcmpl-" if obj == "chat.completion" else "cmpl-") + uuid.uuid4().hex
        created, prompt_tokens = int(time.time()), sum(map(len, prompts))
        if req.stream:
            def chunk(index: int, text: str | None, finish: str | None, first: bool) -> dict[str, Any]:
                if obj == "chat.completion":
                    delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
                    c = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": engine.name,
                            "system_fingerprint": None, "choices": [c]}
                c = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
                return {"id": rid, "object": "text_completion", "created": created, "model": engine.name,
                        "choices": [c]}
            return StreamingResponse(stream(engine, handle, params, prompt_tokens, chunk, req.include_usage, slot),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        finished = False
        try:
            # woken by the engine's worker when the request ends, rather than polling (measured: about half the
            # event loop's CPU per request at 32 clients)
            loop, ready = asyncio.get_running_loop(), asyncio.Event()
            handle.add_done_callback(lambda: loop.call_soon_threadsafe(ready.set))
            try:
                await asyncio.wait_for(ready.wait(), engine.request_timeout_s)
            except asyncio.TimeoutError:
                engine.metrics.count("timeouts")
                raise APIError(504, f"the request ran past the server's timeout of "
                                    f"{engine.request_timeout_s:g} s", code="timeout", type="timeout_error") from None
            try:
                groups = handle.result(0)
            except Exception as e:  # noqa: BLE001 - answered 500 in OpenAI's shape; the worker keeps serving
                engine.metrics.count("errors")
                raise APIError(500, f"generation failed: {e}", type="server_error") from None
            finished = True
        finally:
            if not finished:  # a timeout, or the client went away (the task is cancelled)
                handle.cancel()
            slot.__exit__(None, None, None)
        done = [engine.view(c, params) for group in groups for c in group]
        used = sum(c.tokens for c in done)
        engine.metrics.tokens(prompt_tokens, used)
        return {"id": rid, "object": obj, "created": created, "model": engine.name, "system_fingerprint": None,
                "choices": [choice(i, c) for i, c in enumerate(done)], "usage": usage(prompt_tokens, used)}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest):
        engine = known(req.model)
        params = req.params()
        messages = [m.plain() for m in req.messages]
        params = bounded(engine, params, sum(len(m["content"]) for m in messages), "messages")
        try:
            ids = engine.prompt_ids(messages)
        except EngineError as e:
            raise APIError(400, e.message, e.param) from None
        return await run(engine, [ids], params, req, "messages", "chat.completion", chat_choice)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        engine = known(req.model)
        params = req.params()
        prompts = req.prompts()
        params = bounded(engine, params, max(len(p) for p in prompts), "prompt")
        return await run(engine, [engine.encode(p) for p in prompts], params, req, "prompt", "text_completion",
                         text_choice)

    return app
