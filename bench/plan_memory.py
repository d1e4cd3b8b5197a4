"""Measured peak training memory of `lmforge sft` next to `lmforge plan`'s estimate.

    python bench/plan_memory.py MODEL METHOD BATCH SEQ [KEY=VALUE ...]

Runs a few SFT steps in this process on synthetic instruction data packed to full rows (so every micro-batch
is exactly BATCH x SEQ tokens) and prints one line ``PLAN_MEMORY {json}`` with

- ``measured_gb``: the highest resident memory (VmHWM, reset when training starts) over the training steps,
  minus the resident memory just before the model was loaded, i.e. what loading and training added;
- ``estimate_gb``: the plan's ``training_gb`` (all parts but the fixed runtime allowance) for the same run.

Linux only (``/proc/self/status`` and ``clear_refs``). Evaluation and checkpoint writing are outside the
measured window: the plan is for the training step.
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

WORDS = "the a model learns to answer every question with care and a short clear reason for it".split()


def _kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size


def _data(path: Path, rows: int) -> Path:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            words = [rng.choice(WORDS) for _ in range(rng.randint(60, 120))]
            f.write(json.dumps({"instruction": " ".join(words[:10]), "output": " ".join(words[10:])}) + "\n")
    return path


def measure(model: str, method: str, batch: int, seq: int, extra: list[str]) -> dict:
    from lmforge.config import load_config
    from lmforge.engine import trainer as trainer_mod
    from lmforge.models.memory_plan import plan
    from lmforge.stages import sft as sft_mod

    state = {"before_load_kb": None, "peak_kb": 0}
    load = sft_mod.load_model
    step = trainer_mod.Trainer.train_step

    def load_model(cfg, tokenizer):
        state["before_load_kb"] = _kb("VmRSS")
        model = load(cfg, tokenizer)
        state["after_load_kb"] = _kb("VmRSS")
        return model

    def train_step(self, micro):
        if not state["peak_kb"]:
            state["train_start_kb"] = _kb("VmRSS")
            _reset_peak()
        out = step(self, micro)
        state["peak_kb"] = max(state["peak_kb"], _kb("VmHWM"))
        return out

    sft_mod.load_model = load_model
    trainer_mod.Trainer.train_step = train_step
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(Path(tmp) / "train.jsonl", rows=max(64, 4 * batch * seq // 60))
        peft = "none" if method == "full" else method
        overrides = [f"model.path={model}", f"data.sources=[{{path: {data}}}]", f"data.max_length={seq}",
                     f"train.batch_size={batch}", "train.steps=3", "epochs=null", "eval.baseline=false",
                     f"peft.method={peft}", "data.chunk_tokens=null", f"run.root={tmp}/runs", "threads=1", *extra]
        cfg = load_config(sft_mod.SFTConfig, None, overrides)
        sft_mod.sft(cfg)
    estimate = plan(model, method=method, batch=batch, seq=seq, gpus=0, r=cfg.peft.r)
    measured_gb = (state["peak_kb"] - state["before_load_kb"]) / 1024**2
    return {"model": model, "method": method, "batch": batch, "seq": seq, "measured_gb": round(measured_gb, 3),
            "estimate_gb": estimate.training_gb, "parts_gb": estimate.parts_gb,
            "ratio": round(estimate.training_gb / measured_gb, 3),
            "loaded_gb": round((state["after_load_kb"] - state["before_load_kb"]) / 1024**2, 3),
            "at_train_start_gb": round((state["train_start_kb"] - state["before_load_kb"]) / 1024**2, 3)}


if __name__ == "__main__":
    model, method, batch, seq, *rest = sys.argv[1:]
    print("PLAN_MEMORY " + json.dumps(measure(model, method, int(batch), int(seq), rest)), flush=True)
