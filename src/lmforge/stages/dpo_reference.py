"""The reference log-probs of ``lmforge dpo``: computed once, for the rows the run uses, cached in the run folder.

Which rows: the sampler's order is seeded, so the training pairs of all ``steps x batch_size`` draws are known
before the first step (:meth:`lmforge.data.dpo_data.PairBatches.planned`); those and the held-out rows get a
reference value, the rest of a large file never does. The cache ``reference_logprobs.pt`` stores each value under
its row's key (:func:`lmforge.data.dpo_data.row_key`: the token ids and targets of both rows) beside a fingerprint
of the model and tokenizer, so a longer resumed run, or a repeated one on other pairs of the same file, computes
only the rows it has not seen. A cache whose fingerprint differs (another model, weights, dtype or tokenizer) is
never reused: a one-line notice, and every needed row is computed again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.dpo_data import PairBatches, Row, collate, collate_shared, row_key

REFERENCE_FILE = "reference_logprobs.pt"


@torch.no_grad()
def compute_reference(model, rows: list[tuple[Row, Row]], pad: int, batch_size: int, chunk_tokens: int | None,
                      adapter: bool, share_prompt: bool = False) -> torch.Tensor:
    """``[N, 2]`` summed response log-probs (first row, second row: chosen and rejected, or a KTO example and its
    mismatched response) under the reference: the model as loaded, or with ``adapter`` the same model with its
    adapter switched off."""
    from .dpo import sequence_logprobs

    was = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    with model.disable_adapter() if adapter else contextlib.nullcontext():
        for lo in range(0, len(rows), batch_size):
            part = rows[lo:lo + batch_size]
            batch = (collate_shared if share_prompt else collate)(part, list(range(len(part))), [1.0] * len(part),
                                                                  pad)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            lp, _ = sequence_logprobs(model, batch, chunk_tokens)
            out.append(lp.view(2, -1).T.double().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros((0, 2), dtype=torch.float64)


def planned_rows(n_rows: int, train, world_size: int) -> list[int]:
    """The training rows (sorted, distinct) all processes will draw in ``train.steps`` steps of ``train`` (a
    :class:`lmforge.engine.TrainConfig`): each process's seeded sampler, replayed from the start."""
    micro, accum = train.micro(world_size), train.grad_accum(world_size)
    used: set[int] = set()
    blank = [None] * n_rows  # the order depends only on the row count, the seed and the rank
    for rank in range(world_size):
        used.update(PairBatches(blank, [1.0] * n_rows, micro, 0, rank, world_size, train.seed)
                    .planned(train.steps * accum))
    return sorted(used)


def weights_signature(path: str) -> str:
    """Name, size and mtime of a local model's weight files (cheap: a model retrained in place changes it);
    the id itself for a hub model."""
    p = Path(path)
    if not p.exists():
        return path
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf"))
    return hashlib.sha256(json.dumps([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]).encode()
                          ).hexdigest()


def fingerprint(model_path: str, dtype: str, model, tokenizer) -> dict[str, Any]:
    """What a reference value depends on besides its rows: the model (path, config, weight files), its dtype and
    the tokenizer (vocab size and hash). The rows themselves (hence the chat template) are each value's key."""
    vocab = sorted(tokenizer.get_vocab().items())
    return {
        "model": str(Path(model_path).resolve()) if Path(model_path).exists() else model_path,
        "weights": weights_signature(model_path),
        "model_config": hashlib.sha256(model.config.to_json_string(use_diff=False).encode()).hexdigest(),
        "dtype": dtype,
        "vocab_size": len(vocab),
        "vocab": hashlib.sha256(json.dumps(vocab).encode()).hexdigest(),
    }


def read_cache(path: Path, fp: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{row key: [2] values}`` of a cache with this fingerprint; {} (and a one-line notice naming the file and
    what differs) for one made under another fingerprint."""
    if not path.is_file():
        return {}
    cached = torch.load(path, weights_only=True)
    bad = sorted(k for k in fp if cached.get("fingerprint", {}).get(k) != fp[k])
    if bad:
        print(f"notice: {path} was computed for another {', '.join(bad)}; computing the reference log-probs again",
              file=sys.stderr, flush=True)
        return {}
    return dict(zip(cached["keys"], cached["values"], strict=True))


def reference_for(path: Path, fp: dict[str, Any], rows: list[tuple[Row, Row]],
                  compute: Callable[[list[tuple[Row, Row]]], torch.Tensor], write: bool = True
                  ) -> tuple[torch.Tensor, dict[str, int]]:
    """``[len(rows), 2]`` reference values of ``rows``: those in the cache reused, the others computed (each
    distinct row once) and added to the cache, which is rewritten atomically; and how many rows were computed."""
    have = read_cache(path, fp)
    keys = [row_key(r) for r in rows]
    missing = list(dict.fromkeys(k for k in keys if k not in have))
    if missing:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        new = compute([rows[first[k]] for k in missing])
        have.update(zip(missing, new, strict=True))
        if write:
            tmp = path.with_suffix(".tmp")
            torch.save({"fingerprint": fp, "keys": list(have), "values": torch.stack(list(have.values()))}, tmp)
            tmp.replace(path)
    values = torch.stack([have[k] for k in keys]) if keys else torch.zeros((0, 2), dtype=torch.float64)
    return values, {"reference_rows_computed": len(missing), "reference_rows_reused": len(set(keys)) - len(missing)}
