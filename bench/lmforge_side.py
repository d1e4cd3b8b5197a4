"""lmforge side of the benchmarks: the same model, data, batch, length, lr and steps as the TRL side.
Prints one JSON line with the same fields. Seconds are the engine's training-loop time (batches, forward,
backward, optimizer), like TRL's on_train_begin..on_train_end.

    python lmforge_side.py lm|sft|reward|dpo --model DIR --data FILE ...

dpo: seconds = the reference pass (``compute_reference``, every training pair, no grad) + the training loop;
the stage's other set-up (loading, tokenising, the cache fingerprint, saving) is left out, as TRL's model load
and dataset tokenisation are. With --order (the row indices the TRL side trained on, from trl_side.py
--order-out) the first epoch follows that order, so both sides see the same batches; the stage's own seeded
shuffle is used otherwise. Timers around collation, the training forward and the reference pass say where
the time goes (the rest of the loop is backward + optimizer).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time

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


def dpo(args, root: str) -> dict:
    import lmforge.stages.dpo as stage
    from lmforge.config import load_config

    cfg = load_config(stage.DPOConfig, None, [
        *same_run(args, root, "dpo"), f"model.path={args.model}", f"data.train=[{args.data}]",
        "data.eval_fraction=0", f"data.max_length={args.seq}", "loss.name=dpo", "loss.beta=0.1", "epochs=null",
        f"data.share_prompt={str(not args.no_share).lower()}", *args.set])
    prof = {"reference_seconds": 0.0, "forward_seconds": 0.0, "collate_seconds": 0.0, "pairs": 0,
            "sequence_tokens": 0, "reference_pairs": 0}
    order = json.load(open(args.order)) if args.order else None
    kept: list[int] = []  # training pair -> its row in --data (the stage drops pairs that do not fit)
    encode, compute_reference, logprobs, batches = (stage.encode_pairs, stage.compute_reference,
                                                    stage.sequence_logprobs, stage.PairBatches)

    def encode_pairs(tokenizer, pairs, *a, **k):
        out = encode(tokenizer, pairs, *a, **k)
        if not kept:  # the first call is the training set
            where = {id(p): i for i, p in enumerate(pairs)}
            kept.extend(where[id(p)] for p in out[0])
        return out

    def timed_reference(model, rows, *a, **k):
        t = time.perf_counter()
        out = compute_reference(model, rows, *a, **k)
        prof["reference_seconds"] += time.perf_counter() - t
        prof["reference_pairs"] += len(rows)
        return out

    def timed_logprobs(model, batch, *a, **k):
        t = time.perf_counter()
        out = logprobs(model, batch, *a, **k)
        if model.training:
            prof["forward_seconds"] += time.perf_counter() - t
        return out

    class Batches(batches):
        def _perm(self):
            if order is None or self.epoch > 0:
                return super()._perm()
            pos = {row: i for i, row in enumerate(kept)}
            first = [pos[r] for r in order if r in pos]
            seen = set(first)
            return first + [i for i in super()._perm() if i not in seen]

        def planned(self, n_batches):  # the rows the stage computes reference values for: this order's
            fresh = Batches(self.rows, self.weights, self.micro, self.pad, self.rank, self.world_size, self.seed)
            return [i for _ in range(n_batches) for i in fresh._next_indices()]

        def next_batch(self):
            t = time.perf_counter()
            b = super().next_batch()
            prof["collate_seconds"] += time.perf_counter() - t
            prof["pairs"] += len(b["index"])
            prof["sequence_tokens"] += b.get("sequence_tokens", b["tokens"])
            return b

    stage.encode_pairs, stage.compute_reference, stage.sequence_logprobs, stage.PairBatches = (
        encode_pairs, timed_reference, timed_logprobs, Batches)
    import lmforge.stages.dpo_reference as reference

    if hasattr(reference, "PairBatches"):  # where the reference pass plans the rows it covers
        reference.PairBatches = Batches
    summary = stage.dpo(cfg)
    from safetensors import safe_open

    with safe_open(f"{args.model}/model.safetensors", "pt") as f:  # the summary does not count parameters
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return {**summary, **prof, "params": params, "loop_seconds": summary["train_seconds"],
            "train_seconds": round(summary["train_seconds"] + prof["reference_seconds"], 3),
            "order_followed": order is not None, "dropped_pairs": sum(1 for _ in open(args.data)) - len(kept)}


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
    ap.add_argument("task", choices=("lm", "sft", "reward", "dpo"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--no-share", action="store_true", help="reward / dpo: no prompt sharing (padded rows)")
    ap.add_argument("--order", default=None, help="dpo: JSON list of --data row indices to train on first")
    ap.add_argument("--set", nargs="*", default=[], help="dpo: extra DPOConfig overrides (KEY=VALUE)")
    ap.add_argument("--save", default=None, help="copy the trained final/ model here (bench/sft_loss_parity.py)")
    args = ap.parse_args()
    sys.path.insert(0, args.shared)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    from trl_bench import calib_gflops

    calib_before = calib_gflops()
    summary = {"lm": lm, "sft": sft, "reward": reward, "dpo": dpo}[args.task](args, tempfile.mkdtemp(prefix="lmforge_bench_"))
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
    if args.task == "dpo":  # seconds: reference pass + loop; tokens: forwarded (a shared prompt once)
        secs = summary["train_seconds"]
        extra = {k: round(summary[k], 3) if isinstance(summary[k], float) else summary[k]
                 for k in ("loop_seconds", "reference_seconds", "reference_pairs", "forward_seconds",
                           "collate_seconds", "pairs", "sequence_tokens", "order_followed", "dropped_pairs")}
        extra.update(pairs_per_s=round(summary["pairs"] / secs, 3),
                     sequence_tokens_per_s=round(summary["sequence_tokens"] / secs, 1), overrides=args.set)
    print(json.dumps({
        "impl": "lmforge", "task": args.task, "packing": args.task not in ("reward", "dpo") or not args.no_share,
        "steps": summary["steps"],
        "train_tokens": summary["tokens"], "seconds": summary["train_seconds"],
        "tokens_per_s": round(summary["tokens"] / summary["train_seconds"], 1),
        "final_loss": round(summary["train_loss"], 5),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "calib_gflops": round((calib_before + calib_after) / 2, 1), "params": summary["params"], **extra,
    }))


if __name__ == "__main__":
    main()
