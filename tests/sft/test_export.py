"""``lmforge export`` and the save paths: a tokenizer in every model folder, no stale GGUF quantisation label,
weights readable as the umask allows."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from lmforge.config import load_config
from lmforge.errors import InputError
from lmforge.models.peft import PeftSection, apply_peft, save_adapter
from lmforge.stages.export import ExportConfig, export


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def adapter(tmp_path: Path, tiny_model_dir: Path, tokenizer=None) -> Path:
    """A LoRA adapter on the tiny model with non-zero B (so merging changes the weights)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = apply_peft(AutoModelForCausalLM.from_pretrained(tiny_model_dir), PeftSection(method="lora", r=2),
                       special_token_ids=[])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return save_adapter(model, tokenizer, tmp_path / "adapter", str(tiny_model_dir))


def run_export(tmp_path: Path, source: Path, *extra: str) -> dict:
    return export(load_config(ExportConfig, None, [f"source={source}", f"out={tmp_path / 'merged'}", *extra]))


def test_adapter_with_its_tokenizer_exports_it(tmp_path: Path, tiny_model_dir: Path, tokenizer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = adapter(tmp_path, tiny_model_dir, tokenizer)
    summary = run_export(tmp_path, src)
    assert summary["tokenizer"] == str(src)
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert tok.chat_template and tok("a cat").input_ids == tokenizer("a cat").input_ids
    AutoModelForCausalLM.from_pretrained(tmp_path / "merged")


def test_adapter_without_tokenizer_falls_back_to_its_base(tmp_path: Path, tiny_model_dir: Path, tokenizer) -> None:
    from transformers import AutoTokenizer

    src = adapter(tmp_path, tiny_model_dir)
    assert not (src / "tokenizer_config.json").exists()
    assert run_export(tmp_path, src)["tokenizer"] == str(tiny_model_dir)
    assert AutoTokenizer.from_pretrained(tmp_path / "merged")("a cat").input_ids == tokenizer("a cat").input_ids


def test_no_tokenizer_anywhere_is_an_error_and_writes_nothing(tmp_path: Path, tiny_model_dir: Path) -> None:
    import shutil

    base = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, base)
    for f in base.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            f.unlink()
    src = adapter(tmp_path, base)
    with pytest.raises(InputError, match="no tokenizer found, tried: .*adapter.*bare"):
        run_export(tmp_path, src)
    assert not (tmp_path / "merged").exists() and not (tmp_path / "merged.tmp").exists()
    assert run_export(tmp_path, src, f"tokenizer={tiny_model_dir}")["tokenizer"] == str(tiny_model_dir)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_weights_follow_the_umask(tmp_path: Path, tiny_model_dir: Path, tokenizer, mask: int) -> None:
    with umask(mask):
        src = adapter(tmp_path, tiny_model_dir, tokenizer)
        run_export(tmp_path, src)
    want = 0o666 & ~mask
    for f in [src / "adapter_model.safetensors", tmp_path / "merged" / "model.safetensors",
              tmp_path / "merged" / "config.json", tmp_path / "merged" / "lmforge_export.json"]:
        assert f.stat().st_mode & 0o777 == want, (f.name, oct(f.stat().st_mode))


def test_save_hf_drops_a_gguf_quantization_label(tmp_path: Path, tiny_model_dir: Path, tokenizer) -> None:
    """What a GGUF load leaves on the config (``GgufConfig``), on a tiny model; test_smollm2 checks the real file."""
    from transformers import AutoModelForCausalLM
    from transformers.utils.quantization_config import GgufConfig

    from lmforge.models.load import save_hf

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.quantization_config = GgufConfig()
    save_hf(model, tokenizer, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and "gguf_file" not in config
