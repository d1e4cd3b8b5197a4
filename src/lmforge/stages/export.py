"""Export: a plain Hugging Face model folder from an adapter (merged into its base), a run, or a GGUF file.

``merge_and_unload`` folds each LoRA/DoRA update into its base weight (W' = W + (alpha/r) B A, with DoRA's
magnitude rescaling), and trainable special-token rows into the embedding, so the result loads with
``AutoModelForCausalLM.from_pretrained`` and no ``peft``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..config import Section
from ..errors import InputError
from ..runs import atomic_write_text, default_file_modes


class ExportConfig(Section):
    source: str = Field(description="an adapter folder, a run folder (its final/ is used), a model folder or .gguf")
    out: str = Field(description="the folder to write (must not exist unless overwrite)")
    base: str | None = Field(None, description="the adapter's base model; null: the one recorded in the adapter")
    tokenizer: str | None = Field(None, description="where the tokenizer comes from; null: the source, else "
                                  "(for an adapter) its base model")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


def _resolve_source(source: str) -> Path | str:
    path = Path(source).expanduser()
    if path.is_dir() and (path / "final").is_dir() and not (path / "config.json").exists():
        return path / "final"  # a run folder
    return path if path.exists() else source


def _load_tokenizer(where: str):
    """A tokenizer from a model spec (folder, .gguf, hub id) or an adapter folder (which has no config.json)."""
    from ..models.load import load_tokenizer

    return load_tokenizer(where)


def find_tokenizer(candidates: list[str]):
    """The first of ``candidates`` that loads as a tokenizer, and where it came from.

    A model folder without its tokenizer loads in no pipeline (``AutoTokenizer`` and ``lmforge serve`` fail
    on it), so finding none is an error naming every place tried, not a silent omission.
    """
    tried = []
    for where in dict.fromkeys(c for c in candidates if c):
        try:
            return _load_tokenizer(where), where
        except (InputError, OSError, ValueError, TypeError) as e:
            tried.append(f"{where} ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__})")
    raise InputError("no tokenizer found, tried: " + "; ".join(tried) + " (pass --tokenizer)",
                     field="tokenizer")


def export(cfg: ExportConfig, overwrite: bool = False) -> dict[str, Any]:
    """Write ``cfg.out`` as a plain HF model (+ tokenizer); returns a small summary."""
    import shutil

    from ..models.load import load_causal_lm, save_hf
    from ..models.peft import base_of, is_adapter, load_merged

    t0 = time.time()
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError("output folder exists; pass --overwrite", file=out)
        shutil.rmtree(out)
    src = _resolve_source(cfg.source)
    if isinstance(src, Path) and is_adapter(src):
        base = cfg.base or base_of(src)
        tokenizer, tok_from = find_tokenizer([cfg.tokenizer, str(src), base])
        model = load_merged(src, base, dtype=cfg.dtype)
        kind = "merged adapter"
    else:
        base = None
        tokenizer, tok_from = find_tokenizer([cfg.tokenizer, str(src)])
        model = load_causal_lm(str(src), dtype=cfg.dtype)
        kind = "model"
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_hf(model, tokenizer, tmp)
    record = {"source": str(src), "base": base, "kind": kind, "tokenizer": tok_from}
    atomic_write_text(tmp / "lmforge_export.json", json.dumps(record, indent=1))
    default_file_modes(tmp)
    tmp.rename(out)
    n = sum(p.numel() for p in model.parameters())
    return {"stage": "export", "kind": kind, "source": str(src), "base": base, "out": str(out), "params": n,
            "tokenizer": tok_from, "seconds": round(time.time() - t0, 2)}
