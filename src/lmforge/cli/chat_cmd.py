"""``lmforge chat``: talk to a model in the terminal (streamed answers, history, commands)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("chat")
    def chat_cmd(model: str = typer.Argument(..., help="model folder, adapter folder, .gguf file or hub id"),
                 system: str | None = typer.Option(None, "--system", help="system prompt"),
                 temperature: float = typer.Option(0.7, min=0.0, max=2.0, help="0: greedy"),
                 top_p: float = typer.Option(1.0, min=0.01, max=1.0, help="nucleus sampling"),
                 max_tokens: int = typer.Option(512, min=1, help="the most tokens per answer"),
                 seed: int | None = typer.Option(None, help="seed for reproducible answers (default: fresh)"),
                 dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                 device: str = typer.Option("auto", help="auto, cpu, cuda, ...")) -> None:
        """Chat with MODEL: each line is your turn and the answer streams back. Commands: /reset, /undo,
        /save FILE, /load FILE, /system TEXT, /quit (or end of input)."""
        import sys

        from ..errors import InputError
        from ..models.load import DTYPES
        from ..serve.chat import Chat, run
        from ..serve.engine import ChatEngine, SamplingParams

        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r} (use float32, bfloat16 or float16)", field="dtype")
        try:
            engine = ChatEngine.load(model, dtype=dtype, device=device)
        except ValueError as e:
            raise InputError(str(e), field="model") from None
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_tokens,
                                seed=seed)
        try:
            run(Chat(engine, params, system), input, sys.stdout)
        finally:
            engine.close()
