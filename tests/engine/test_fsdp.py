"""FSDP2 (``train.distributed=fsdp``) on CPU with gloo, tested as DDP is: 2 sharded processes give the losses of
1 process with the same global batch, a checkpoint resumes exactly, and ``final/`` loads in plain transformers.

The stages that cannot shard (adapters, reward models) refuse ``fsdp`` in one line with exit code 2.
"""
from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_PRETRAIN, run_cli

pytestmark = pytest.mark.slow

FSDP = ["train.distributed=fsdp", "threads=1"]


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def torchrun() -> list[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
            "-m", "lmforge"]


def run2(args: list[str], cwd: Path) -> None:
    run_cli(args, cwd, launcher=torchrun(), env={"OMP_NUM_THREADS": "1"}, timeout=300)


def test_pretrain_fsdp_equals_one_process_resumes_exactly_and_saves_final(tmp_path: Path,
                                                                          corpus_file: Path) -> None:
    from transformers import AutoModelForCausalLM

    common = ["pretrain", f"data.paths=[{corpus_file}]", "train.steps=6", "train.micro_batch_size=2",
              "train.save_every=3", "train.eval_every=0", *TINY_PRETRAIN]
    run_cli(common + ["run.name=one"], tmp_path)
    run2(common + FSDP + ["run.name=two"], tmp_path)
    one, two = losses(tmp_path / "runs/one"), losses(tmp_path / "runs/two")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    # same global batch, same data; only the order of the gradient reductions differs (losses ~5)
    assert [two[s] for s in sorted(two)] == pytest.approx([one[s] for s in sorted(one)], rel=1e-5)
    assert two[6] < two[1]

    # final/ is a plain HF folder holding exactly the gathered weights of the last checkpoint
    final = tmp_path / "runs/two/final"
    model = AutoModelForCausalLM.from_pretrained(final)
    ckpt = torch.load(tmp_path / "runs/two/checkpoints/step-6/model.pt")
    state = model.state_dict()
    assert set(ckpt) <= set(state)
    assert all(torch.equal(state[k], ckpt[k]) for k in ckpt)

    # resume from the step-3 checkpoint of a copy: steps 4-6 again, bit for bit
    resumed = tmp_path / "runs/resumed"
    shutil.copytree(tmp_path / "runs/two", resumed)
    shutil.rmtree(resumed / "checkpoints/step-6")
    shutil.rmtree(resumed / "final")
    run2(common + FSDP + ["run.name=resumed", "--resume"], tmp_path)
    assert losses(resumed) == two
    again = torch.load(resumed / "checkpoints/step-6/model.pt")
    assert all(torch.equal(again[k], ckpt[k]) for k in ckpt)


@pytest.fixture
def base_and_chat(tmp_path: Path) -> tuple[Path, Path]:
    """A random 2-block Llama with our BPE (and its chat template) as a HF folder, and 40 chat examples."""
    import random

    from conftest import synthetic_text
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    tok = train_bpe(synthetic_text(60).split("\n\n"), vocab_size=400)
    torch.manual_seed(0)
    base = save_hf(create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=128), tok), tok,
                   tmp_path / "base")
    rng = random.Random(0)
    rows = []
    for _ in range(40):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                                  {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]})
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base, chat


def test_sft_fsdp_equals_one_process_resumes_exactly_and_saves_final(tmp_path: Path, base_and_chat) -> None:
    from transformers import AutoModelForCausalLM

    base, chat = base_and_chat
    common = ["sft", f"model.path={base}", f"data.sources=[{{path: {chat}}}]", "eval.world=false", "epochs=null",
              "train.steps=4", "train.batch_size=4", "train.micro_batch_size=2", "train.warmup_steps=1",
              "train.log_every=1", "train.save_every=2", "data.max_length=64", "data.packing=false"]
    run_cli(common + ["run.name=one", "threads=1"], tmp_path)
    run2(common + FSDP + ["run.name=two"], tmp_path)
    one, two = losses(tmp_path / "runs/one"), losses(tmp_path / "runs/two")
    assert sorted(one) == sorted(two) == [1, 2, 3, 4]
    assert [two[s] for s in sorted(two)] == pytest.approx([one[s] for s in sorted(one)], rel=1e-5)

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "runs/two/final")
    ckpt = torch.load(tmp_path / "runs/two/checkpoints/step-4/model.pt")
    state = model.state_dict()
    assert all(torch.equal(state[k], ckpt[k]) for k in ckpt)

    resumed = tmp_path / "runs/resumed"
    shutil.copytree(tmp_path / "runs/two", resumed)
    shutil.rmtree(resumed / "checkpoints/step-4")
    shutil.rmtree(resumed / "final")
    run2(common + FSDP + ["run.name=resumed", "--resume"], tmp_path)
    assert losses(resumed) == two


@pytest.mark.parametrize("stage", ["sft", "sft_world_eval", "rm"])
def test_stages_that_cannot_shard_refuse_fsdp_in_one_line(tmp_path: Path, stage: str) -> None:
    args = {"sft": ["sft", "model.path=base", "peft.method=lora"],
            "sft_world_eval": ["sft", "model.path=base"],  # the default mixture is the built-in world's
            "rm": ["rm", "model.path=base", "data.train=[fb.jsonl]"]}[stage]
    proc = run_cli(args + ["train.distributed=fsdp"], tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.distributed=fsdp" in lines[0] and "train.distributed=ddp" in lines[0]
    assert not (tmp_path / "runs").exists()
