"""``lmforge tokenizer train``: a byte-level BPE for the given texts (or the built-in world), saved atomically."""
from __future__ import annotations

import shutil
from pathlib import Path


def train_tokenizer(inputs: list[str], out: Path, vocab_size: int = 3072, text_field: str = "text",
                    world_seed: int = 0):
    """Train on ``inputs`` (none: the world's corpus) and save to ``out`` via a temporary folder, so a crash
    never leaves a half-written tokenizer where a finished one was. Returns (tokenizer, first document)."""
    from ..data.tokenizer import train_bpe
    from .corpus import load_documents

    docs, _ = load_documents(inputs, text_field, world_seed, clean=False)
    tok = train_bpe(docs, vocab_size=vocab_size)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tok.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return tok, docs[0]
