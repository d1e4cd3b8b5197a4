"""``lmforge serve``: an OpenAI-compatible HTTP server for one local model."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(model: str = typer.Argument(..., help="model folder, .gguf file or hub id"),
                  host: str = typer.Option("127.0.0.1", help="address to listen on"),
                  port: int = typer.Option(8000, help="port"),
                  name: str | None = typer.Option(None, "--name", help="the model id clients ask for "
                                                     "\\[default: the folder or file name, or the hub id]"),
                  dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                  device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
                  log_level: str = typer.Option("info", help="uvicorn log level")) -> None:
        """Serve MODEL with the OpenAI chat API: GET /v1/models, POST /v1/chat/completions (non-streaming;
        temperature, top_p, max_tokens, n, seed, stop, logprobs/top_logprobs, usage). Point any OpenAI client,
        or 'lmforge judge --endpoint http://HOST:PORT', at it."""
        import uvicorn

        from ..errors import InputError
        from ..models.load import DTYPES
        from ..serve.engine import ChatEngine
        from ..serve.openai_server import create_app

        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)", field="dtype")
        try:
            engine = ChatEngine.load(model, dtype=dtype, device=device, served_name=name)
        except ValueError as e:
            raise InputError(str(e), field="model") from None
        typer.echo(f"serving {engine.name} on http://{host}:{port}/v1 (OpenAI chat completions)", err=True)
        uvicorn.run(create_app(engine), host=host, port=port, log_level=log_level)
