"""Side-by-side throughput against TRL 1.16 on the shared tiny Llama, alternating runs in one session.

    python bench/compare.py lm     --rounds 3   # lmforge pretrain  vs SFTTrainer on plain text
    python bench/compare.py sft    --rounds 3   # lmforge sft       vs SFTTrainer (completion-only loss)
    python bench/compare.py reward --rounds 3   # lmforge rm        vs RewardTrainer
    python bench/compare.py dpo --rounds 3 --steps 40   # lmforge dpo vs DPOTrainer, with and without precompute
    python bench/compare.py grpo|rloo --rounds 2 --steps 4   # vs GRPOTrainer / RLOOTrainer (bench/rl_bench_common.py)
    python bench/compare.py grpo --rounds 5 --steps 4 --baseline-src DIR/src   # + lmforge from another tree

Same model (../shared/bench/make_tiny.py), rows (../shared/bench/data.py), batch, max length, lr and steps.
Each run is a fresh process; rounds alternate TRL and lmforge. Reports median tokens/s (non-pad tokens of
training forwards per second of training loop), the ratio to TRL's best mode, CPU utilisation
(6 x params x tokens/s / fp32 matmul FLOP/s measured around each run), final loss and peak RSS.
Rows are appended to bench/results/<task>.jsonl.

reward: lmforge forwards each prompt once for all of its responses (model.share_prompt), so its forwarded tokens
are fewer than the same pairs' tokens as TRL counts them (prompt in both sequences). The table gives pairs/s
(the same data processed per second; the ratio column), forwarded tokens/s and pair-equivalent tokens/s.

dpo: the same, with TRL run twice per round: its default (a second model copy forwarded at every step) and
precompute_ref_log_probs=True (one reference pass over the whole train set in the trainer's __init__, timed and
added to its seconds). lmforge's seconds include its reference pass (bench/lmforge_side.py). The first TRL run
records which rows it trained on, in order; lmforge trains on those rows in that order (same batches), so the
final losses are comparable step for step.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LR = {"lm": 2e-5, "sft": 2e-5, "reward": 1e-4, "dpo": 1e-6}  # TRL's defaults per trainer


def sh(cmd: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc.stdout


DUMP = """
import json, sys
sys.path.insert(0, {shared!r})
import data
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained({model!r})
with open({out!r}, "w") as f:
    if {task!r} == "lm":  # the SFT rows as plain text through the chat template
        for r in data.sft_dataset():
            f.write(json.dumps({{"text": tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False)}}) + "\\n")
    elif {task!r} == "sft":
        for r in data.sft_dataset():
            f.write(json.dumps({{"prompt": r["prompt"], "completion": r["completion"]}}) + "\\n")
    else:
        for r in data.preference_dataset():
            f.write(json.dumps({{"prompt": r["prompt"], "chosen": r["chosen"][0]["content"],
                                "rejected": r["rejected"][0]["content"]}}) + "\\n")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("lm", "sft", "reward", "dpo", "grpo", "rloo"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "bench"))
    ap.add_argument("--rows", type=int, default=None, help="dpo: all sides train on the first N rows only (TRL's "
                    "precompute pass covers its whole train set: with N = steps x batch, the rows it uses)")
    ap.add_argument("--ours", nargs="*", default=[], help="dpo: also run lmforge with these DPOConfig overrides "
                    "(row lmforge_tuned)")
    ap.add_argument("--max-new-tokens", type=int, default=128, help="grpo / rloo: tokens sampled per response")
    ap.add_argument("--baseline-src", default=None, help="grpo / rloo: also run lmforge from this source tree "
                    "(PYTHONPATH; e.g. `git archive <commit> src | tar -x -C DIR`, then DIR/src), row lmforge_base")
    args = ap.parse_args()
    shared = Path(args.shared)
    if not (shared / "trl_bench.py").exists():
        sys.exit(f"the shared TRL harness is not at {shared} (pass --shared)")
    work = Path(sh(["bash", str(HERE / "setup_trl.sh")]).strip().splitlines()[-1])
    trl_py, model = str(work / "trl-env" / "bin" / "python"), work / "tiny_llama"
    if args.task in ("grpo", "rloo"):  # issue 15: the RL benchmark lives in bench/rl_bench_*.py
        from rl_bench_common import compare_rl
        return compare_rl(args, work, trl_py, model, sh)
    data = work / f"{'reward' if args.task == 'dpo' else args.task}_rows.jsonl"  # dpo: the same pairs
    if not data.exists():
        sh([trl_py, "-c", DUMP.format(shared=str(shared), model=str(model), out=str(data), task=args.task)])
    if args.task == "dpo" and args.rows:
        first = work / f"reward_rows_first{args.rows}.jsonl"
        first.write_text("".join(open(data).readlines()[:args.rows]))
        data = first
    common = ["--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq)]
    ours = [sys.executable, str(HERE / "lmforge_side.py"), args.task, "--model", str(model), "--data", str(data),
            "--shared", str(shared), "--lr", str(LR[args.task]), *common]
    if args.task == "reward":
        peers = {"trl": [trl_py, str(shared / "trl_bench.py"), "reward", "--model", str(model), *common]}
    elif args.task == "dpo":
        order = work / f"dpo_order_{args.steps}x{args.batch}_{args.rows}.json"
        peer = [trl_py, str(HERE / "trl_side.py"), "dpo", "--model", str(model), "--data", str(data),
                "--shared", str(shared), "--lr", str(LR["dpo"]), *common, *(["--rows", str(args.rows)] if args.rows
                                                                            else [])]
        peers = {"trl": peer + ["--order-out", str(order)], "trl_precompute": peer + ["--precompute"]}
        ours += ["--order", str(order)]
        if args.ours:  # a second lmforge run with these settings, beside the defaults
            peers["lmforge"] = ours
            ours = ours + ["--set", *args.ours]
    else:
        peer = [trl_py, str(HERE / "trl_side.py"), args.task, "--model", str(model), "--data", str(data),
                "--shared", str(shared), "--lr", str(LR[args.task]), *common]
        peers = {"trl": peer, "trl_packing": peer + ["--packing"]}
    runs = {**peers, "lmforge_tuned" if "lmforge" in peers else "lmforge": ours}
    results: dict[str, list[dict]] = {k: [] for k in runs}
    out = HERE / "results" / f"{args.task}.jsonl"
    out.parent.mkdir(exist_ok=True)
    for r in range(args.rounds):
        for name, cmd in runs.items():
            row = json.loads(sh(cmd).strip().splitlines()[-1])
            row.setdefault("calib_gflops", row.get("calib_gflops_before"))
            row.setdefault("params", None)
            row.update(name=name, round=r, command=" ".join(Path(c).name if "/" in c else c for c in cmd[1:]))
            results[name].append(row)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.task in ("reward", "dpo"):
        return reward_table(results, args.rounds, args.task)
    params = next(x["params"] for x in results["lmforge"])
    med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in results.items()}
    best_peer = max(v for k, v in med.items() if k != "lmforge")
    print(f"| {args.task} | tokens/s (median of {args.rounds}) | vs best TRL | CPU utilisation | final loss | "
          "peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for k, v in results.items():
        util = statistics.median(6 * params * x["tokens_per_s"] / (x["calib_gflops"] * 1e9) for x in v)
        print(f"| {k} | {med[k]:,.0f} | {med[k] / best_peer:.2f}x | {util:.0%} | {v[-1]['final_loss']} | "
              f"{max(x['peak_rss_mb'] for x in v):,.0f} |")


def reward_table(results: dict[str, list[dict]], rounds: int, task: str = "reward") -> None:
    """pairs/s (the ratio column), forwarded and pair-equivalent tokens/s, medians over rounds; dpo adds the
    ratio to TRL with precompute, each run's calibration and the reference seconds."""
    params = next(x["params"] for x in results["lmforge"])

    def fields(x: dict) -> tuple[float, float, float]:
        if x.get("impl") == "lmforge":
            return x["pairs_per_s"], x["tokens_per_s"], x["sequence_tokens_per_s"]
        pairs = x["sequences"] / 2  # TRL: two sequences per pair; its train_tokens count the prompt twice
        return pairs / x["seconds"], x["tokens_per_s"], x["tokens_per_s"]

    med = {k: [statistics.median(fields(x)[i] for x in v) for i in range(3)] for k, v in results.items()}
    dpo = task == "dpo"
    print(f"| {task} | pairs/s (median of {rounds}) | vs TRL (pairs/s) |" + (" vs TRL precompute |" if dpo else "")
          + " forwarded tokens/s | pair-equivalent tokens/s | CPU utilisation (forwarded) | final loss | peak RSS MB |"
          + (" seconds per round (reference part) | calib GFLOP/s |" if dpo else ""))
    print("|---" * (11 if dpo else 8) + "|")
    for k, v in results.items():
        util = statistics.median(6 * params * fields(x)[1] / (x["calib_gflops"] * 1e9) for x in v)
        pre = f" {med[k][0] / med['trl_precompute'][0]:.2f}x |" if dpo else ""
        tail = ""
        if dpo:
            ref = [f" ({x['reference_seconds']:.1f})" if x.get("reference_seconds") else "" for x in v]
            secs = ", ".join(f"{x['seconds']:.1f}{r}" for x, r in zip(v, ref, strict=True))
            calib = ", ".join(f"{x['calib_gflops']:.0f}" for x in v)
            tail = f" {secs} | {calib} |"
        print(f"| {k} | {med[k][0]:.2f} | {med[k][0] / med['trl'][0]:.2f}x |{pre} {med[k][1]:,.0f} | "
              f"{med[k][2]:,.0f} | {util:.0%} | {v[-1]['final_loss']} | {max(x['peak_rss_mb'] for x in v):,.0f} |"
              + tail)


if __name__ == "__main__":
    main()
