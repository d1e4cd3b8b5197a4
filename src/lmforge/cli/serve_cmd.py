"""``lmforge serve``: an OpenAI-compatible HTTP server for one local model."""
from __future__ import annotations

import typer

from ..serve.limits import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(model: str = typer.Argument(..., help="model folder, .gguf file or hub id"),
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
                  docs: bool = typer.Option(False, "--docs", help="serve the API docs at /docs and /redoc and "
                                                                  "the schema at /openapi.json")) -> None:
        """Serve MODEL with the OpenAI API: GET /v1/models, POST /v1/chat/completions and /v1/completions
        (streaming by server-sent events; temperature, top_p, max_tokens, n, seed, stop, logprobs, usage;
        unsupported parameters such as tools are answered 400), GET /metrics. Concurrent requests are batched;
        beyond --max-queue they get 429. Point any OpenAI client,
        or 'lmforge judge --endpoint http://HOST:PORT', at it. Bodies over --max-body-bytes get 413, bodies
        slower than --body-timeout 408, prompts with more characters than the context could hold 400, all
        before the model sees them."""
        import uvicorn

        from ..errors import InputError
        from ..models.load import DTYPES
        from ..serve.engine import ChatEngine
        from ..serve.openai_server import create_app

        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)", field="dtype")
        try:
            engine = ChatEngine.load(model, dtype=dtype, device=device, served_name=name, max_queue=max_queue,
                                     batch_size=batch_size, request_timeout_s=request_timeout)
        except ValueError as e:
            raise InputError(str(e), field="model") from None
        typer.echo(f"serving {engine.name} on http://{host}:{port}/v1 (OpenAI chat and text completions)", err=True)
        app = create_app(engine, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout, docs=docs,
                         api_key=api_key)
        try:  # uvicorn stops on SIGTERM/SIGINT after the open requests end; then the worker is stopped
            uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=max_connections)
        finally:
            engine.close()
