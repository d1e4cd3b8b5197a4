"""``lmforge data split``: a seeded train / held-out split of a prompt or record file."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import print_summary
from .data_cmd import data_app


def register(app: typer.Typer) -> None:  # joins the `data` group that data_cmd registers
    @data_app.command("split")
    def split_cmd(source: Path = typer.Argument(..., help="prompt file (.csv with goal/prompt/instruction/"
                                                "question, .jsonl/.json/.parquet, .txt one per line) or, "
                                                "with --records, any record file"),
                  out: Path = typer.Option(..., "--out", "-o", help="folder for train.jsonl, heldout.jsonl, "
                                           "split.json"),
                  heldout: float = typer.Option(0.5, "--heldout", help="share of the records held out"),
                  seed: int = typer.Option(0, "--seed", help="seed of the shuffle that picks the held-out ones"),
                  limit: int | None = typer.Option(None, "--limit", min=1, help="split only the first N records"),
                  records: bool = typer.Option(False, "--records", help="copy records unchanged (e.g. "
                                               "preference JSONL) instead of reading them as prompts"),
                  exclude: list[Path] = typer.Option([], "--exclude", help="prompt file whose prompts are left "
                                                     "out before the split (e.g. another split's heldout.jsonl); "
                                                     "repeatable"),
                  like: list[Path] = typer.Option([], "--like", help="prompt file whose prompts' opening words "
                                                  "the --limit prompts follow in proportion (e.g. the harmful "
                                                  "training half, for a benign contrast set); repeatable"),
                  tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE set in every prompt's meta (e.g. "
                                                "kind=harmful, for a reward term's `when` after files are "
                                                "merged); repeatable"),
                  ) -> None:
        """Split SOURCE by a seed into OUT/train.jsonl and OUT/heldout.jsonl (both in the file's order) and
        record the split (source SHA-256, seed, counts, held-out ids) in OUT/split.json. Prompts are written as
        {"id", "prompt", "meta"} rows, the format of 'lmforge generate', 'lmforge revise', the RL stages'
        prompts.source and 'lmforge eval --harmful/--benign'."""
        from ..data.split import parse_tags, split_file

        info = split_file(source, out, heldout=heldout, seed=seed, prompts=not records, limit=limit,
                          exclude=list(exclude), like=list(like), tags=parse_tags(tag))
        shown = ["records", "train", "heldout", "seed"] + ["excluded"] * bool(exclude) + ["like_matched"] * bool(like)
        print_summary(f"split {source}", {k: info[k] for k in shown})
        typer.echo(f"wrote {out}/train.jsonl, heldout.jsonl, split.json")
