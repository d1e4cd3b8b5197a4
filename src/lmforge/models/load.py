"""Load and save models in Hugging Face format: a hub id, a local folder, or a GGUF file in; plain HF out.

GGUF files are dequantised by ``transformers`` on load. ``save_pretrained`` refuses a GGUF-loaded model, so
:func:`save_hf` rebuilds a plain module from the config first.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def resolve(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """(path or hub id for ``from_pretrained``, extra kwargs such as ``gguf_file``)."""
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise InputError("GGUF file not found", file=path)
        return str(path.parent), {"gguf_file": path.name}
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and len(ggufs) == 1:
            return str(path), {"gguf_file": ggufs[0].name}
        if not (path / "config.json").exists():
            raise InputError("folder has no config.json (not a Hugging Face model folder)", file=path)
        return str(path), {}
    if path.exists():
        raise InputError("expected a model folder, a .gguf file or a hub id", file=path)
    if name_or_path.startswith((".", "/", "~")) or os.sep + os.sep in name_or_path:
        raise InputError("model path not found", file=path)
    return name_or_path, {}  # a hub id; transformers reports what it cannot find


def load_tokenizer(name_or_path: str):
    """A tokenizer from a model spec (folder, .gguf, hub id), or from an adapter folder that saved one (tokenizer
    files but no config.json: what SFT writes beside its adapter)."""
    from transformers import AutoTokenizer

    path = Path(name_or_path).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and (path / "tokenizer_config.json").exists():
        where, extra = str(path), {}
    else:
        where, extra = resolve(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(where, **extra)
    except OSError as e:
        raise InputError(f"cannot load tokenizer ({e})", file=name_or_path) from None


def load_causal_lm(name_or_path: str, dtype: str = "float32", **kwargs: Any):
    from transformers import AutoModelForCausalLM

    where, extra = resolve(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=DTYPES[dtype], **extra, **kwargs)
    except OSError as e:
        raise InputError(f"cannot load model ({e})", file=name_or_path) from None
    if extra.get("gguf_file"):
        model = plain_copy(model)
        release_freed_memory()
    return model


def release_freed_memory() -> None:
    """Give freed heap back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Dequantising a GGUF file and copying it into a plain module frees the dequantised copy, but glibc keeps
    the pages: measured on SmolLM2-135M (0.50 GB of weights), resident memory after the load fell from 1.08 GB
    to 0.67 GB with the trim, memory that training would otherwise never get back.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass  # not glibc


def plain_copy(model):
    """A plain (non-GGUF) copy of ``model`` that ``save_pretrained`` accepts."""
    from transformers import AutoModelForCausalLM

    config = model.config
    drop_gguf_quantization(config)
    fresh = AutoModelForCausalLM.from_config(config, dtype=next(model.parameters()).dtype)
    fresh.load_state_dict(model.state_dict())
    fresh.generation_config = model.generation_config
    return fresh


def drop_gguf_quantization(config) -> None:
    """Forget that a config came from a GGUF file: transformers dequantises GGUF weights on load, so a saved
    copy holds plain weights and a kept ``quantization_config: {quant_method: gguf}`` would mislabel them."""
    if hasattr(config, "gguf_file"):
        delattr(config, "gguf_file")
    quant = getattr(config, "quantization_config", None)
    method = quant.get("quant_method") if isinstance(quant, dict) else getattr(quant, "quant_method", None)
    if quant is not None and str(getattr(method, "value", method)).lower() == "gguf":
        delattr(config, "quantization_config")


def save_hf(model, tokenizer, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Save ``model`` (or ``state_dict``, its gathered weights) and ``tokenizer`` so ``transformers`` loads
    the folder unchanged (files readable as the umask allows, no GGUF quantisation label on dequantised
    weights)."""
    from ..runs import default_file_modes

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    drop_gguf_quantization(model.config)
    model.save_pretrained(path, safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    default_file_modes(path)  # safetensors writes 0600
    return path


def save_final(run, model, tokenizer) -> Path | None:
    """Write ``run/final`` (HF format) atomically: a crash mid-save leaves any older ``final/`` intact.

    Every rank must call it: an FSDP2 model's full weights are gathered from all ranks (a collective), then
    only the main process writes them.
    """
    state = full_state_dict(model)
    if not run.main:
        return None
    tmp = run.staging_dir("final")
    save_hf(model, tokenizer, tmp, state_dict=state)
    return run.commit_dir(tmp, "final")


def full_state_dict(model) -> dict[str, torch.Tensor] | None:
    """The unsharded weights of an FSDP2 model, on the CPU of rank 0 (other ranks get ``{}``); ``None`` for
    a model that is not sharded (its own ``state_dict`` is already full). A collective under FSDP2."""
    from ..engine.distributed import is_sharded

    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
