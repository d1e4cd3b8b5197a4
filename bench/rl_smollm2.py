"""PPO and GRPO on a real policy and a real reward model, on CPU (issue 15, "real model"): SmolLM2-135M-Instruct
+ LoRA as the policy, an all-MiniLM-L6-v2 reward model trained here on HH-RLHF helpful-base pairs (its own BERT
tokenizer: the policy's text is re-tokenised for it), the first Alpaca instructions as prompts.

    python bench/rl_smollm2.py [--rollouts 3] [--rm-pairs 600] [--out /tmp/rl_smollm2]

Reports per algorithm: the reward model's held-out pair accuracy, the mean normalised reward of the first and the
last rollout, the KL to the reference (k1 per response) at the end, seconds per optimizer step (training loop
only), seconds of generation and scoring per rollout, and the whole run's seconds. Appends one JSON row per
algorithm to bench/results/rl_smollm2.jsonl.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
sys.path.insert(0, str(HERE))  # rm_hh_rlhf.backbone_path: where the installed model packages keep their files


def export_policy(out: Path) -> Path:
    from lmforge.models.load import load_causal_lm, load_tokenizer, save_hf
    from rm_hh_rlhf import backbone_path

    folder = out / "smollm2"
    if not (folder / "config.json").exists():
        gguf = backbone_path("smollm2")
        save_hf(load_causal_lm(gguf), load_tokenizer(gguf), folder)
    return folder


def train_reward_model(out: Path, pairs: int) -> tuple[Path, float]:
    from lmforge.config import load_config
    from lmforge.data.preference import write_feedback
    from lmforge.feedback.importers import import_records
    from lmforge.stages.rm import RMConfig, train_rm
    from rm_hh_rlhf import backbone_path

    recs, _ = import_records(SHARED / "hh_rlhf" / "helpful-base-test.jsonl.gz", "hh-rlhf")
    write_feedback(out / "rm_train.jsonl", recs[:pairs])
    write_feedback(out / "rm_eval.jsonl", recs[-300:])  # the file's last 300 pairs: never trained on
    cfg = load_config(RMConfig, None, [
        f"model.path={backbone_path('minilm')}", f"data.train=[{out / 'rm_train.jsonl'}]",
        f"data.eval=[{out / 'rm_eval.jsonl'}]", "model.max_length=128", "epochs=1", "train.batch_size=16",
        "train.lr=1e-4", "train.warmup_steps=10", "eval.batch_size=64", f"run.root={out}", "run.name=rm"])
    summary = train_rm(cfg, overwrite=True)
    return out / "rm" / "final", summary["heldout_pair_accuracy"]


def write_prompts(out: Path, n: int) -> Path:
    """The first ``n`` Alpaca instructions as prompt rows (the one prompt-file reader; RL reads prompt rows)."""
    from lmforge.data.prompt_files import read_prompt_file
    from lmforge.data.readers import write_jsonl_atomic

    path = out / "prompts.jsonl"
    write_jsonl_atomic(path, [it.as_row() for it in read_prompt_file(SHARED / "alpaca" / "alpaca_first200.json", n)])
    return path


def run_rl(out: Path, algorithm: str, policy: Path, rm: Path, prompts: Path, rollouts: int) -> dict:
    from lmforge.config import load_config
    from lmforge.stages.rl import RLConfig, rl_train

    shape = (["rl.prompts_per_rollout=16", "rl.ppo_epochs=2"] if algorithm == "ppo"
             else ["rl.prompts_per_rollout=4", "rl.group_size=4"])  # 16 responses a rollout either way
    cfg = load_config(RLConfig, None, [
        f"model.path={policy}", f"prompts.source={prompts}", f"run.root={out}", f"run.name={algorithm}",
        f"rl.algorithm={algorithm}", f"rl.rollouts={rollouts}", *shape, "peft.method=lora",
        f"reward.terms=[{{kind: model, path: {rm}, clip: 5.0}}]", "sampling.max_new_tokens=64",
        "sampling.temperature=1.0", "train.batch_size=8", "train.micro_batch_size=4", "train.lr=1e-4",
        "train.log_every=1", "threads=2"])
    t0 = time.time()
    s = rl_train(cfg, overwrite=True)
    rows = [json.loads(x) for x in (out / algorithm / "metrics.jsonl").read_text().splitlines()]
    roll = [r for r in rows if "reward_mean" in r]
    return {"algorithm": algorithm, "rollouts": s["rollouts"], "steps": s["steps"],
            "responses_per_rollout": 16, "max_new_tokens": 64,
            "reward_first": roll[0]["reward_mean"], "reward_last": roll[-1]["reward_mean"],
            "kl_ref_end": s["kl_ref_end"], "response_length_end": s["response_length_end"],
            "seconds_per_step": round(s["train_seconds"] / max(s["steps"], 1), 2),
            "seconds_generation_per_rollout": round(sum(r.get("seconds_generation", 0) for r in roll) / len(roll), 2),
            "seconds_scoring_per_rollout": round(sum(r.get("seconds_scoring", 0) for r in roll) / len(roll), 2),
            "seconds_total": round(time.time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=3)
    ap.add_argument("--rm-pairs", type=int, default=600)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--out", default="/tmp/rl_smollm2")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    policy = export_policy(out)
    rm, rm_acc = train_reward_model(out, args.rm_pairs)
    prompts = write_prompts(out, args.prompts)
    results = HERE / "results" / "rl_smollm2.jsonl"
    for algorithm in ("ppo", "grpo"):
        row = {**run_rl(out, algorithm, policy, rm, prompts, args.rollouts), "rm_heldout_pair_accuracy": rm_acc,
               "rm_train_pairs": args.rm_pairs, "loadavg": round(os.getloadavg()[0], 2),
               "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
               "date": time.strftime("%Y-%m-%d")}
        print(json.dumps(row), flush=True)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
