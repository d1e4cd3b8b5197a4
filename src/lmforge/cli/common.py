"""Small helpers shared by the command modules: config arguments and result tables."""
from __future__ import annotations

import os
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
