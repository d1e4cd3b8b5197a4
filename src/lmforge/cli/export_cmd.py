"""``lmforge export SOURCE OUT``."""
from __future__ import annotations

import typer

from .common import OVERWRITE, print_summary


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(source: str = typer.Argument(..., help="adapter folder, run folder, model folder or .gguf"),
                   out: str = typer.Argument(..., help="folder to write the plain Hugging Face model to"),
                   base: str | None = typer.Option(None, "--base", help="the adapter's base model "
                                                      "(default: the one recorded in the adapter)"),
                   tokenizer: str | None = typer.Option(None, "--tokenizer", help="where the tokenizer comes "
                                                           "from (default: the source, else the adapter's base)"),
                   dtype: str = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16"),
                   overwrite: bool = OVERWRITE) -> None:
        """Merge a LoRA/DoRA adapter into its base (or convert a run / GGUF model) and save a plain HF model
        that loads with AutoModelForCausalLM.from_pretrained and no peft."""
        from ..config import load_config
        from ..stages.export import ExportConfig, export

        cfg = load_config(ExportConfig, None, [f"source={source}", f"out={out}", f"dtype={dtype}"] +
                          ([f"base={base}"] if base else []) + ([f"tokenizer={tokenizer}"] if tokenizer else []))
        print_summary("export", export(cfg, overwrite=overwrite))
