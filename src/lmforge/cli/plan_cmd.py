"""``lmforge plan MODEL``: will fine-tuning this model fit, and with which method."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_cmd(model: str = typer.Argument(..., help="hub id, model folder, .gguf file or config.json"),
                 method: str | None = typer.Option(None, "--method",
                                                   help="full, lora, dora or qlora (default: all four)"),
                 batch: int = typer.Option(1, "--batch", min=1, help="examples per forward pass per device"),
                 seq: int = typer.Option(512, "--seq", min=1, help="tokens per example"),
                 gpus: int | None = typer.Option(None, "--gpus", min=0,
                                                 help="0: plan for the CPU (default: the GPUs present, "
                                                 "else the CPU)"),
                 distributed: str = typer.Option("ddp", "--distributed", help="ddp or fsdp across the GPUs"),
                 memory: float | None = typer.Option(None, "--memory", min=0,
                                                     help="GB per device: say which methods fit"),
                 dtype: str | None = typer.Option(None, "--dtype",
                                                  help="weight dtype (default: float32 on CPU, bfloat16 on GPU)"),
                 rank: int = typer.Option(16, "--rank", min=1, help="adapter rank r"),
                 as_json: bool = typer.Option(False, "--json", help="print the plans as JSON")) -> None:
        """Estimate peak training memory per device — weights, gradients, optimizer states, activations,
        adapter, quantised base — from the model's config alone (no weights are loaded)."""
        from ..errors import InputError
        from ..models.memory_plan import METHODS, plan

        if distributed not in ("ddp", "fsdp"):
            raise InputError(f"unknown --distributed {distributed!r} (ddp or fsdp)", field="--distributed")
        methods = [method] if method else [m for m in METHODS if m != "qlora" or gpus != 0]
        plans = [plan(model, method=m, batch=batch, seq=seq, gpus=gpus, dtype=dtype, r=rank,
                      distributed=distributed) for m in methods]
        if as_json:
            print(json.dumps([p.to_dict() for p in plans], indent=2))
            return
        first = plans[0]
        where = "CPU" if first.device == "cpu" else f"{first.gpus} GPU(s), {distributed}"
        table = Table(title=f"peak training memory per device: {model}, batch {batch} x {seq} tokens, {where}")
        parts = list(dict.fromkeys(k for p in plans for k in p.parts_gb))
        table.add_column("GB")
        for p in plans:
            table.add_column(f"{p.method} ({p.dtype})", justify="right")
        table.add_row("trainable params", *(f"{p.trainable:,}" for p in plans))
        for k in parts:
            table.add_row(k, *(f"{p.parts_gb.get(k, 0):.2f}" for p in plans))
        table.add_row("total", *(f"{p.total_gb:.2f}" for p in plans), style="bold")
        if memory is not None:
            table.add_row(f"fits in {memory:g} GB", *("yes" if p.total_gb <= memory else "no" for p in plans))
        Console().print(table)
