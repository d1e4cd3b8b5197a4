"""Third-party noise (DDP's, transformers' and peft's warnings; tqdm bars) is hidden by default and shown with
``lmforge --verbose``; lmforge's own tables stay."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import synthetic_text
from lmforge.cli.common import NOISE_ENV, VERBOSE_ENV, quiet_third_party


@pytest.fixture
def tiny_base(tmp_path: Path) -> Path:
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    tok = train_bpe(synthetic_text(60).split("\n\n"), vocab_size=400)
    torch.manual_seed(0)
    return save_hf(create_model(ModelConfig(depth=1, aspect=32, head_dim=32, max_seq_len=128), tok), tok,
                   tmp_path / "base")


def lmforge(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # a clean environment: an in-process CLI call by another test may have set the quieting variables here
    env = {k: v for k, v in os.environ.items() if k not in NOISE_ENV and k != VERBOSE_ENV}
    proc = subprocess.run([sys.executable, "-m", "lmforge", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_lora_sft_output_is_quiet_by_default_and_verbose_on_request(tmp_path: Path, tiny_base: Path) -> None:
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {i}."},
                                                     {"role": "assistant", "content": f"{i}."}]}) + "\n"
                            for i in range(8)))
    args = ["sft", f"model.path={tiny_base}", f"data.sources=[{{path: {chat}}}]", "eval.world=false",
            "epochs=null", "train.steps=1", "train.batch_size=2", "train.warmup_steps=0", "data.max_length=32",
            "peft.method=lora", "peft.merge=true", "threads=1"]
    quiet = lmforge(args + ["run.name=quiet"], tmp_path)
    loud = lmforge(["--verbose", *args, "run.name=loud"], tmp_path)
    for text in ["Loading weights", "Writing model shards"]:  # transformers' bars: shown only when verbose
        assert text not in quiet.stderr + quiet.stdout, text
        assert text in loud.stderr, text
    # third-party warnings (which ones depends on the versions: peft < 0.22 warns `is_gradient_checkpointing`)
    # never reach the quiet run; _emit_every_noise below makes each one the filters know and checks them
    assert "Warning" not in quiet.stderr + quiet.stdout and "is_gradient_checkpointing" not in quiet.stderr
    for proc in (quiet, loud):  # lmforge's own output is unchanged
        assert "trainable_params" in proc.stdout and "step 1/1" in proc.stderr


def _emit_every_noise(tmp_path: Path) -> None:
    """Make the real libraries emit each warning of NOISE_WARNINGS once."""
    import torch.distributed as dist
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    model.is_gradient_checkpointing  # noqa: B018 -- the deprecated property peft reads
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.peft_config["default"].base_model_name_or_path = str(tmp_path / "base.gguf")  # no config.json
    get_peft_model_state_dict(peft_model)  # offline: peft cannot tell whether the vocabulary changed
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2), broadcast_buffers=False)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("verbose", [False, True])
def test_noise_warnings_filtered_unless_verbose(tmp_path: Path, monkeypatch, verbose: bool) -> None:
    # a fresh process's environment: an earlier in-process CLI call (any test that ran main()) set NOISE_ENV
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items()
                                        if k != VERBOSE_ENV and k not in NOISE_ENV})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party(verbose)
        _emit_every_noise(tmp_path)
    seen = " | ".join(str(w.message) for w in caught)
    for text in ("`broadcast_buffers` is deprecated", "`is_gradient_checkpointing` is deprecated",
                 "Could not find a config file"):
        assert (text in seen) == verbose, (text, seen)
    assert (os.environ.get("TQDM_DISABLE") == "1") != verbose
    assert (os.environ.get(VERBOSE_ENV) == "1") == verbose  # inherited by the processes it launches
