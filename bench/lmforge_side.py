"""lmforge side of the benchmarks: the same model, data, batch, length, lr and steps as the TRL side.
Prints one JSON line with the same fields. Seconds are the engine's training-loop time (batches, forward,
backward, optimizer), like TRL's on_train_begin..on_train_end.

    python lmforge_side.py lm|sft|reward --model DIR --data FILE ...
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

# TRL's defaults, matched: linear decay to 0, no warmup, AdamW betas (0.9, 0.999), wd 0, clip 1.0, fused.
TRAIN = ["train.schedule=linear", "train.min_lr_ratio=0", "train.warmup_steps=0", "train.eval_every=0",
         "train.log_every=10", "train.betas=[0.9,0.999]", "train.weight_decay=0"]


def same_run(args, root: str, name: str) -> list[str]:
    """Overrides every side shares: where the run goes and the training the TRL side also gets."""
    return [f"run.root={root}", f"run.name={name}", f"train.steps={args.steps}", f"train.batch_size={args.batch}",
            f"train.lr={args.lr}", *TRAIN]


def lm(args, root: str) -> dict:
    from lmforge.config import load_config
    from lmforge.stages.pretrain import PretrainConfig, pretrain

    cfg = load_config(PretrainConfig, None, [
        *same_run(args, root, "lm"), f"data.paths=[{args.data}]", "data.clean=false", f"data.seq_len={args.seq}",
        "data.val_fraction=0.01", f"tokenizer.path={args.model}", f"model.init_from={args.model}",
        "eval.max_windows=1", "eval.sample_tokens=1"])
    return pretrain(cfg)


def sft(args, root: str) -> dict:
    from lmforge.config import load_config
    from lmforge.stages.sft import SFTConfig
    from lmforge.stages.sft import sft as run_sft

    cfg = load_config(SFTConfig, None, [
        *same_run(args, root, "sft"), f"model.path={args.model}", f"data.sources=[{{path: {args.data}}}]",
        f"data.max_length={args.seq}", "data.truncation=truncate", "epochs=null", "eval.world=false"])
    return run_sft(cfg)


def reward(args, root: str) -> dict:
    from lmforge.config import load_config
    from lmforge.stages.rm import RMConfig, train_rm

    cfg = load_config(RMConfig, None, [
        *same_run(args, root, "rm"), f"model.path={args.model}/reward_model", f"model.max_length={args.seq}",
        f"data.train=[{args.data}]", "data.eval_fraction=0.01", "epochs=null", "loss.centring=0",
        f"model.share_prompt={str(not args.no_share).lower()}"])
    summary = train_rm(cfg)
    summary.update(replay_counts(cfg, summary["steps"]))
    return summary


def replay_counts(cfg, steps: int) -> dict:
    """What the run trained on, by replaying its (seeded, deterministic) batches after the timed loop: records
    (pairs here) and the tokens of those sequences unpacked — each prompt counted once per response, TRL's
    ``train_tokens`` — next to the tokens the trainer forwarded (a shared prompt once)."""
    from lmforge.data.reward_data import GroupBatches
    from lmforge.data.reward_encode import input_format
    from lmforge.models.load import load_tokenizer
    from lmforge.stages.rm import load_data

    tok = load_tokenizer(cfg.model.path)
    train, _, heads, _ = load_data(cfg, tok, input_format(tok, "causal", cfg.model.input_format))
    cfg = cfg.resolved(len(train))
    src = GroupBatches(train, cfg.train.micro(1), tok.pad_token_id, heads.n_heads, seed=cfg.train.seed)
    batches = [src.next_batch() for _ in range(steps * cfg.train.grad_accum(1))]
    return {"records": sum(b["count"] for b in batches), "sequence_tokens": sum(b["sequence_tokens"] for b in batches)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("lm", "sft", "reward"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--no-share", action="store_true", help="reward: model.share_prompt=false (padded rows)")
    ap.add_argument("--save", default=None, help="copy the trained final/ model here (bench/sft_loss_parity.py)")
    args = ap.parse_args()
    sys.path.insert(0, args.shared)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    from trl_bench import calib_gflops

    calib_before = calib_gflops()
    summary = {"lm": lm, "sft": sft, "reward": reward}[args.task](args, tempfile.mkdtemp(prefix="lmforge_bench_"))
    calib_after = calib_gflops()
    if args.save:
        import shutil

        shutil.copytree(summary["final"], args.save, dirs_exist_ok=True)
    sys.stdout = real_stdout
    extra = {}
    if args.task == "reward":  # tokens: forwarded; sequence_tokens: as TRL counts them; records: pairs here
        secs = summary["train_seconds"]
        extra = {"sequence_tokens": summary["sequence_tokens"], "pairs": summary["records"],
                 "pairs_per_s": round(summary["records"] / secs, 3),
                 "sequence_tokens_per_s": round(summary["sequence_tokens"] / secs, 1),
                 "prompt_sharing": summary["prompt_sharing"]}
    print(json.dumps({
        "impl": "lmforge", "task": args.task, "packing": args.task != "reward" or not args.no_share,
        "steps": summary["steps"],
        "train_tokens": summary["tokens"], "seconds": summary["train_seconds"],
        "tokens_per_s": round(summary["tokens"] / summary["train_seconds"], 1),
        "final_loss": round(summary["train_loss"], 5),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "calib_gflops": round((calib_before + calib_after) / 2, 1), "params": summary["params"], **extra,
    }))


if __name__ == "__main__":
    main()
