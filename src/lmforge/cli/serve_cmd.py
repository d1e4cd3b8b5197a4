"""``lmforge serve``: an OpenAI-compatible HTTP server for a local model, or a base and several adapters."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import typer

from ..serve.limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(model: str = typer.Argument(..., help="model folder, .gguf file, hub id or adapter folder; "
                                               "with --adapter, the base model the adapters were trained on; "
                                               "an lmforge rm folder is served at POST /v1/rewards only"),
                  adapter: list[str] = typer.Option([], "--adapter", help="NAME=PATH (or PATH, named after its "
                                                    "folder): serve this adapter of MODEL as model NAME; "
                                                    "repeatable, one base in memory for all"),
                  reward_model: list[str] = typer.Option([], "--reward-model", help="NAME=PATH (or PATH): "
                                                         "also serve this lmforge rm reward model at POST "
                                                         "/v1/rewards as model NAME; repeatable"),
                  host: str = typer.Option("127.0.0.1", help="address to listen on"),
                  port: int = typer.Option(8000, help="port"),
                  name: str | None = typer.Option(None, "--name", help="the model id clients ask for "
                                                     "\\[default: the folder or file name, or the hub id]"),
                  dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                  device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
                  log_level: str = typer.Option("info", help="uvicorn log level"),
                  max_body_bytes: int = typer.Option(DEFAULT_MAX_BODY_BYTES, min=1, help="larger request bodies "
                                                     "are answered 413 before they are read"),
                  body_timeout: float = typer.Option(DEFAULT_BODY_TIMEOUT_S, min=0.001, help="seconds a request "
                                                     "body may take to arrive; slower ones are answered 408 and "
                                                     "their connection closed"),
                  max_connections: int = typer.Option(256, min=1, help="connections and requests served at "
                                                      "once; beyond them new requests are answered 503 (a cap "
                                                      "on what slow or stalled clients can hold)"),
                  api_key: str | None = typer.Option(None, "--api-key", envvar="LMFORGE_API_KEY",
                                                     help="require 'Authorization: Bearer KEY' on /v1 (401 "
                                                          "otherwise)"),
                  max_queue: int = typer.Option(64, min=1, help="requests admitted at once (running or "
                                                "queued for the next batch); beyond them 429"),
                  batch_size: int = typer.Option(32, min=1, help="the most rows decoded together in one batch"),
                  request_timeout: float = typer.Option(600.0, min=0.001, help="seconds a request may take; "
                                                        "longer ones are cancelled and answered 504"),
                  shutdown_timeout: float = typer.Option(5.0, min=0.0, help="on SIGTERM or Ctrl-C, seconds the "
                                                         "requests in progress get to finish before they are "
                                                         "cancelled"),
                  docs: bool = typer.Option(False, "--docs", help="serve the API docs at /docs and /redoc and "
                                                                  "the schema at /openapi.json")) -> None:
        """Serve MODEL (and each --adapter NAME=PATH over it) with the OpenAI API and a chat page at /:
        GET /v1/models, POST /v1/chat/completions and /v1/completions, and with --reward-model POST
        /v1/rewards (scores of responses by a trained reward model, read as lmforge rm score reads it)
        (streaming by server-sent events; temperature, top_p, max_tokens, n, seed, stop, logprobs, usage;
        unsupported parameters such as tools are answered 400), GET /metrics. Concurrent requests are batched;
        beyond --max-queue they get 429. Point any OpenAI client,
        or 'lmforge judge --endpoint http://HOST:PORT', at it. Bodies over --max-body-bytes get 413, bodies
        slower than --body-timeout 408, prompts with more characters than the context could hold 400, all
        before the model sees them. SIGTERM stops the server cleanly (exit 0)."""
        import uvicorn

        from ..errors import InputError
        from ..models.load import DTYPES
        from ..rewards.model_reward import SIDECAR
        from ..serve.adapters import load_with_adapters, parse_adapter
        from ..serve.engine import Admission, ChatEngine, default_name
        from ..serve.openai_server import create_app
        from ..serve.rewards import RewardService

        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)", field="dtype")
        options = dict(max_queue=max_queue, batch_size=batch_size, request_timeout_s=request_timeout)
        specs = [parse_adapter(r, "reward-model") for r in reward_model]
        # MODEL itself a reward model folder (lmforge rm's final/): served at /v1/rewards, not as a chat model
        # (its backbone would answer chat requests with a head it was never trained to use)
        model_is_rm = not adapter and (Path(model) / SIDECAR).is_file()
        if model_is_rm:
            specs.insert(0, (name or default_name(model), model))
        if len({n for n, _ in specs}) != len(specs):
            raise InputError("two reward models share a name: give them NAME=PATH", field="reward-model")
        rewards = [RewardService.load(n, p, dtype=dtype, device=device) for n, p in specs]
        try:
            if model_is_rm:
                engines = []
            elif adapter:
                engines = load_with_adapters(model, [parse_adapter(a) for a in adapter], dtype=dtype,
                                             device=device, served_name=name, **options)
            else:
                engines = [ChatEngine.load(model, dtype=dtype, device=device, served_name=name, **options)]
        except ValueError as e:
            raise InputError(str(e), field="model") from None
        if engines:
            names = ", ".join(e.name for e in engines)
            typer.echo(f"serving {names} on http://{host}:{port}/v1 (OpenAI chat and text completions; a chat "
                       f"page at http://{host}:{port}/)", err=True)
        if rewards:
            typer.echo(f"reward models {', '.join(r.name for r in rewards)} at POST http://{host}:{port}/v1/rewards",
                       err=True)
        app = create_app(engines, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout, docs=docs,
                         api_key=api_key, reward_models=rewards,
                         admission=None if engines else Admission(max_queue))  # a reward-model-only server
        try:  # on SIGTERM/SIGINT uvicorn stops listening, gives the open requests shutdown_timeout seconds,
            # then cancels them (a cancelled request frees its batch row); then the workers are stopped
            with sigterm_ends_cleanly():
                uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=max_connections,
                            timeout_graceful_shutdown=shutdown_timeout)
        finally:
            for engine in engines:
                engine.close()
        typer.echo("lmforge serve: stopped (requests ended, generation engines closed)", err=True)


@contextmanager
def sigterm_ends_cleanly():
    """After its graceful shutdown uvicorn raises the SIGTERM it caught again, for the handler that was there
    before it; the default one would kill the process (exit -15) before the engines are closed. So while the
    server runs, that handler is one that does nothing: the shutdown is already done, and the exit code is 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
