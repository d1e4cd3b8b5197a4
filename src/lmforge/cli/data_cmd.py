"""``lmforge data ...``: data preparation commands.

Other data commands can join the same group: ``from lmforge.cli.data_cmd import data_app``.
"""
from __future__ import annotations

from typing import Annotated, Any

import typer

data_app = typer.Typer(help="Data: cleaning, quality filters and de-duplication of text corpora.",
                       no_args_is_help=True)


def _defaults(model: Any, prefix: str = "") -> list[str]:
    """``key = default`` for every leaf of a config, so --help lists every key that can be overridden."""
    from pydantic import BaseModel

    rows = []
    for name, value in model:
        key = prefix + name
        if isinstance(value, BaseModel):
            rows.extend(_defaults(value, key + "."))
        else:
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
            rows.append(f"{key} = {shown}")
    return rows


def _help() -> str:
    from ..data.prepare import PrepareConfig

    keys = "\n".join(_defaults(PrepareConfig())).replace("[", "\\[")
    return f"""Clean, filter and de-duplicate text documents.

Reads .txt/.md, .jsonl, .json, .parquet files and saved Hugging Face dataset folders; normalises unicode and whitespace; drops documents that break Gopher-style quality and repetition rules; removes exact and near duplicates (MinHash LSH), keeping the first occurrence. Writes OUT/data.jsonl (one {{"text", "source", "line"}} per kept document), OUT/report.json and OUT/report.md, all or nothing.

Examples:

  lmforge data prepare inputs='\\[a.txt,b.jsonl]' out=prepared/
  lmforge data prepare prepare.yaml filters.min_words=50 dedup.near.threshold=0.7
  lmforge data prepare inputs=web.parquet out=web/ filters.max_dup_line_fraction=null

A threshold set to null switches that rule off. Keys and defaults:

{keys}
"""


@data_app.command("prepare", help=_help())
def prepare(
    args: Annotated[list[str] | None, typer.Argument(metavar="CONFIG.yaml|KEY=VALUE",
                                                     help="A YAML config and/or key=value overrides.")] = None,
) -> None:
    from rich.console import Console

    from ..config import load_config, split_args
    from ..data.prepare import PrepareConfig, prepare_files
    from ..data.report import summary_table

    path, overrides = split_args(args)
    cfg = load_config(PrepareConfig, path, overrides)
    report = prepare_files(cfg, show_progress=True)
    console = Console()
    console.print(summary_table(report))
    console.print(f"wrote {report['output']}/data.jsonl, report.json, report.md")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
