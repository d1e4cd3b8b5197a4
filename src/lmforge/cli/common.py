"""Small helpers shared by the command modules: config arguments and result tables."""
from __future__ import annotations

import os
import warnings
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from ..config import load_config, split_args

CONFIG_ARGS = typer.Argument(None, metavar="[CONFIG.yaml] [KEY=VALUE ...]",
                             help="a YAML config and/or dotted overrides, e.g. train.lr=3e-4 model.depth=6")
RESUME = typer.Option(False, "--resume", help="continue the run from its latest complete checkpoint")
OVERWRITE = typer.Option(False, "--overwrite", help="delete an existing run folder of the same name first")


# Third-party output a user can do nothing about, hidden unless `lmforge --verbose`. Warnings are matched by
# message, so anything else the same libraries say still shows; lmforge's own bars are rich, not tqdm.
NOISE_WARNINGS = [
    (FutureWarning, r"`broadcast_buffers` is deprecated"),  # DDP; engine.distributed.wrap passes it on purpose
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),  # transformers 5, read by peft
    (UserWarning, r"Could not find a config file in"),  # peft saving an adapter of a GGUF / offline base
    (UserWarning, r"TypedStorage is deprecated"),  # transformers' save_pretrained on torch 2.x
]
# tqdm reads TQDM_* at import ("Loading weights", GGUF dequantisation, "Writing model shards", datasets);
# HF_HUB_* covers the hub's own bars. Environment variables, so torchrun's workers inherit them.
NOISE_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
VERBOSE_ENV = "LMFORGE_VERBOSE"


def quiet_third_party(verbose: bool = False) -> None:
    """Silence :data:`NOISE_WARNINGS` and third-party progress bars, unless ``verbose`` (or a parent
    ``lmforge --verbose`` that launched this process). Called once at CLI start, before anything imports tqdm."""
    if verbose or os.environ.get(VERBOSE_ENV) == "1":
        os.environ[VERBOSE_ENV] = "1"  # for the processes this one launches (the demo's torchrun stages)
        return
    for key, value in NOISE_ENV.items():
        os.environ.setdefault(key, value)
    for category, message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def config_from_args(schema, args: list[str] | None):
    path, overrides = split_args(args)
    return load_config(schema, path, overrides)


def print_summary(title: str, summary: dict[str, Any]) -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the main process reports
        return
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            continue
        table.add_row(key, str(value))
    Console(stderr=False).print(table)


class DefaultCommandGroup(TyperGroup):
    """A command group that runs its ``train`` command when the first word is not a sub-command, so
    ``lmforge sft cfg.yaml`` and ``lmforge sft inspect ...`` both work."""

    default_command = "train"

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)
