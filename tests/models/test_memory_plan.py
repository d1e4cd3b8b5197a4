"""`lmforge plan`: the parts by hand, the fake-tensor activation count against real saved tensors, and the
estimate against the measured peak of real SFT runs (the test model; SmolLM2 when installed)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from lmforge.models.memory_plan import GB, NF4_BITS, _saved_activation_bytes, plan

TINY = {"model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "tie_word_embeddings": True}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY))
    return path


def test_parts_by_hand(tiny_config: Path) -> None:
    # embedding 64x16 (tied head) + q,k,v,o 4x16x16 + gate,up,down 3x16x32 + 2 block norms + final norm
    params, linear = 1024 + 1024 + 1536 + 32 + 16, 1024 + 1536
    full = plan(str(tiny_config), "full", batch=2, seq=8, gpus=0)
    assert (full.params, full.trainable, full.dtype) == (params, params, "float32")
    for part, nbytes in (("weights", 4 * params), ("gradients", 4 * params), ("optimizer", 8 * params)):
        assert full.parts_gb[part] == pytest.approx(nbytes / GB, abs=1e-3)
    assert full.parts_gb["loss"] == pytest.approx(3 * 2 * 8 * 64 * 4 / GB, abs=1e-3)
    # LoRA r=2 on the seven block linears: (in + out) x r each
    lora = plan(str(tiny_config), "lora", batch=2, seq=8, gpus=0, r=2)
    assert lora.trainable == 4 * (16 + 16) * 2 + 2 * (16 + 32) * 2 + (32 + 16) * 2
    qlora = plan(str(tiny_config), "qlora", batch=2, seq=8, gpus=1, r=2)
    expect = linear * NF4_BITS / 8 + (params - linear) * 2 + qlora.trainable * 4
    assert qlora.parts_gb["weights"] == pytest.approx(expect / GB, abs=1e-3)
    assert qlora.parts_gb["runtime"] > full.parts_gb["runtime"]  # a GPU adds its CUDA context


def test_fake_tensor_count_matches_the_real_saved_tensors() -> None:
    """The planner counts saved activations on fake tensors; a real forward of the same model saves as much."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**{**TINY, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2})
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    real = AutoModelForCausalLM.from_config(config).train()
    with FakeTensorMode():
        fake = AutoModelForCausalLM.from_config(config).train()
        counted = _saved_activation_bytes(fake, 4, 32)
    assert counted == pytest.approx(_saved_activation_bytes(real, 4, 32), rel=0.1)


def test_cli_table_and_bad_method(tiny_config: Path, tmp_path: Path) -> None:
    out = run_cli(["plan", str(tiny_config), "--gpus", "0", "--memory", "1"], tmp_path).stdout
    assert "fits in 1 GB" in out and "full (float32)" in out and "qlora" not in out  # no 4-bit base on a CPU
    bad = run_cli(["plan", str(tiny_config), "--method", "lorra"], tmp_path, check=False)
    assert bad.returncode == 2 and "unknown method 'lorra'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_65b_reproduces_the_qlora_papers_order_of_magnitude(tmp_path: Path) -> None:
    """QLoRA (Dettmers et al. 2023): a 65B model needs > 780 GB to fine-tune in 16-bit, < 48 GB with QLoRA
    (with gradient checkpointing, which lmforge does not use: its activations here are those of a full pass)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 8192, "intermediate_size": 22016,
                                  "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 64,
                                  "vocab_size": 32000, "tie_word_embeddings": False}))
    full = plan(str(config), "full", batch=1, seq=512, gpus=1)
    qlora = plan(str(config), "qlora", batch=1, seq=512, gpus=1)
    assert full.params == pytest.approx(65.3e9, rel=0.01)
    assert full.total_gb > 400  # bf16 weights + gradients + bf16 AdamW moments: 8 bytes per parameter
    assert 30 < qlora.parts_gb["weights"] < 36  # 4.127 bits per block weight, the rest bf16
    assert qlora.total_gb < 0.15 * full.total_gb


def measured(model: str, method: str, batch: int, seq: int) -> dict:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "plan_memory.py"), model, method, str(batch),
                           str(seq)], capture_output=True, text=True, timeout=900)
    line = [x for x in proc.stdout.splitlines() if x.startswith("PLAN_MEMORY ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[0].split(" ", 1)[1])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    sys.path.insert(0, str(REPO / "bench"))
    from plan_memory import WORDS

    tok = train_bpe([" ".join(WORDS)] * 50, vocab_size=400)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=512), tok)
    return save_hf(model, tok, tmp_path_factory.mktemp("plan") / "lm")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_estimate_within_25_percent_of_the_measured_peak(tiny_lm: Path, method: str) -> None:
    got = measured(str(tiny_lm), method, 32, 256)  # ~0.3 GB: activations dominate a 2-block width-64 model
    assert got["estimate_gb"] == pytest.approx(got["measured_gb"], rel=0.25), got


@pytest.mark.slow
@pytest.mark.shared
def test_smollm2_lora_estimate_within_25_percent_of_the_measured_peak() -> None:
    from tests.conftest import smollm2_gguf

    got = measured(str(smollm2_gguf()), "lora", 4, 128)
    assert got["estimate_gb"] == pytest.approx(got["measured_gb"], rel=0.25), got
