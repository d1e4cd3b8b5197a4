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


class ExportConfig(Section):
    source: str = Field(description="an adapter folder, a run folder (its final/ is used), a model folder or .gguf")
    out: str = Field(description="the folder to write (must not exist unless overwrite)")
    base: str | None = Field(None, description="the adapter's base model; null: the one recorded in the adapter")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


def _resolve_source(source: str) -> Path | str:
    path = Path(source).expanduser()
    if path.is_dir() and (path / "final").is_dir() and not (path / "config.json").exists():
        return path / "final"  # a run folder
    return path if path.exists() else source


def _tokenizer(where: str):
    """The tokenizer saved with the adapter or model (None when there is none to copy)."""
    from ..models.load import load_tokenizer

    try:
        return load_tokenizer(where)
    except (InputError, OSError, ValueError):
        return None


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
        model = load_merged(src, base, dtype=cfg.dtype)
        tok_from = str(src) if (src / "tokenizer_config.json").exists() else base
        kind = "merged adapter"
    else:
        base = None
        model = load_causal_lm(str(src), dtype=cfg.dtype)
        tok_from = str(src)
        kind = "model"
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tokenizer = _tokenizer(tok_from)
    save_hf(model, tokenizer, tmp)
    (tmp / "lmforge_export.json").write_text(json.dumps({"source": str(src), "base": base, "kind": kind}, indent=1))
    tmp.rename(out)
    n = sum(p.numel() for p in model.parameters())
    return {"stage": "export", "kind": kind, "source": str(src), "base": base, "out": str(out), "params": n,
            "tokenizer": tokenizer is not None,
            "seconds": round(time.time() - t0, 2)}
