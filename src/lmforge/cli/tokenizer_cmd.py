"""``lmforge tokenizer train``."""
from __future__ import annotations

from pathlib import Path

import typer

tokenizer_app = typer.Typer(help="Train tokenizers (byte-level BPE with chat tokens and template).", no_args_is_help=True)


@tokenizer_app.command("train")
def train_cmd(inputs: list[Path] | None = typer.Argument(None, help="text files (.txt/.jsonl/.json/.parquet); "
                                                                    "none: the built-in world's corpus"),
              out: Path = typer.Option(Path("runs/tokenizer"), "--out", help="folder to save the tokenizer in"),
              vocab_size: int = typer.Option(3072, "--vocab-size", min=300),
              text_field: str = typer.Option("text", "--text-field", help="JSON field holding the text"),
              world_seed: int = typer.Option(0, "--world-seed")) -> None:
    """Train a byte-level BPE tokenizer with chat special tokens, a chat template and a pad token.

    The folder loads with transformers.AutoTokenizer; apply_chat_template works on it.
    """
    from ..stages.tokenizer import train_tokenizer

    tok, first = train_tokenizer([str(p) for p in inputs or []], out, vocab_size, text_field, world_seed)
    sample = first[:80]
    ids = tok(sample)["input_ids"]
    typer.echo(f"saved {len(tok)}-token tokenizer to {out}; {len(sample)} chars -> {len(ids)} tokens")


def register(app: typer.Typer) -> None:
    app.add_typer(tokenizer_app, name="tokenizer")
