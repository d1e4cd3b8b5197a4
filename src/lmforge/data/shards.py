"""Packed, memory-mapped token shards and the resumable batch source that reads them.

Documents are tokenised, each prefixed with BOS, and concatenated into flat ``uint16`` (or ``uint32`` for
vocabularies over 65,535) files with an ``index.json``. Training reads fixed windows of ``seq_len + 1``
tokens in the shared seeded order of :mod:`lmforge.data.sampler`.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .sampler import EpochSampler

SHARD_TOKENS = 50_000_000


def _dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65535 else np.dtype(np.uint32)


def write_shards(docs: Iterable[str], tokenizer, out_dir: str | Path, batch_docs: int = 1024,
                 shard_tokens: int = SHARD_TOKENS) -> dict[str, Any]:
    """Tokenise ``docs`` into ``out_dir/shard-*.bin`` + ``index.json`` (written last, atomically)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    dtype = _dtype(len(tokenizer))
    bos = tokenizer.bos_token_id
    shards, buf, n_docs, n_bytes = [], [], 0, 0

    def flush() -> None:
        if not buf:
            return
        arr = np.concatenate(buf).astype(dtype)
        name = f"shard-{len(shards):05d}.bin"
        arr.tofile(tmp / name)
        shards.append({"file": name, "tokens": int(arr.size)})
        buf.clear()

    pending: list[str] = []
    buffered = 0

    def encode(batch: list[str]) -> None:
        nonlocal buffered
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            buf.append(np.asarray([bos, *ids], dtype=np.int64))
            buffered += len(ids) + 1
        if buffered >= shard_tokens:
            flush()
            buffered = 0

    for doc in docs:
        pending.append(doc)
        n_docs += 1
        n_bytes += len(doc.encode("utf-8"))
        if len(pending) == batch_docs:
            encode(pending)
            pending = []
    if pending:
        encode(pending)
    flush()
    index = {"dtype": dtype.name, "vocab_size": len(tokenizer), "docs": n_docs, "bytes": n_bytes,
             "tokens": sum(s["tokens"] for s in shards), "shards": shards}
    (tmp / "index.json").write_text(json.dumps(index, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return index


class TokenShards:
    """All shards of a folder as one read-only token array (memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index = json.loads((self.path / "index.json").read_text())
        arrays = [np.memmap(self.path / s["file"], dtype=self.index["dtype"], mode="r")
                  for s in self.index["shards"]]
        self.tokens = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def __len__(self) -> int:
        return int(self.tokens.size)

    def windows(self, seq_len: int) -> int:
        return max(0, (len(self) - 1) // seq_len)

    def window(self, i: int, seq_len: int) -> np.ndarray:
        start = i * seq_len
        return np.asarray(self.tokens[start:start + seq_len + 1], dtype=np.int64)

    def unigram_entropy(self, vocab_size: int) -> float:
        """Entropy (nats/token) of the token frequency distribution: the loss of the best context-free model."""
        counts = np.bincount(np.asarray(self.tokens, dtype=np.int64), minlength=vocab_size).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())


class PackedBatches:
    """Micro-batches of ``[micro, seq_len + 1]`` windows for one process, in the shared seeded order
    (:class:`~lmforge.data.sampler.EpochSampler`)."""

    def __init__(self, shards: TokenShards, seq_len: int, micro: int, rank: int = 0, world: int = 1,
                 seed: int = 0):
        self.shards, self.seq_len = shards, seq_len
        self.sampler = EpochSampler(shards.windows(seq_len), micro, rank, world, seed)

    def next_batch(self) -> dict[str, Any]:
        rows = [self.shards.window(i, self.seq_len) for i in self.sampler.next_indices()]
        data = torch.from_numpy(np.stack(rows))
        return {"input_ids": data[:, :-1].contiguous(), "labels": data[:, 1:].contiguous()}

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def eval_windows(shards: TokenShards, seq_len: int, max_windows: int) -> torch.Tensor:
    """The first ``max_windows`` windows of a (validation) shard set, as one tensor."""
    n = min(shards.windows(seq_len), max_windows)
    return torch.from_numpy(np.stack([shards.window(i, seq_len) for i in range(n)]))
