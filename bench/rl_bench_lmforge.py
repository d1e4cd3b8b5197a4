"""lmforge side of the GRPO / RLOO benchmark (bench/rl_bench_common.py has the settings). Prints one JSON line.

    python rl_bench_lmforge.py grpo|rloo --model DIR --shared ../shared/bench --prompts FILE --steps 10

One rollout of 4 prompts x 4 responses per optimizer step (rl.rollouts = steps, ppo_epochs 1, batch = micro =
16), so every step generates, scores and trains once, as TRL's does. ``seconds`` is the engine's training-loop
time (``train_seconds``: rollouts included; loading, the final save and the summary left out, as TRL's model
load and dataset preparation are). Generation and scoring seconds are the ones the rollout logs
(``seconds_generation``: ``rollout.generate.complete``; ``seconds_scoring``: reward + the no-grad forwards +
advantages); the reward function's share is timed around the reward call.

The missing-EOS penalty is off (TRL has none) and checkpoints are written only at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import rl_bench_common as common  # noqa: E402

TRAIN = ["train.schedule=linear", "train.min_lr_ratio=0", "train.warmup_steps=0", "train.eval_every=0",
         "train.log_every=10", "train.betas=[0.9,0.999]", "train.weight_decay=0", "train.grad_clip=1.0",
         "train.save_every=0", "train.keep_checkpoints=1"]


def overrides(task: str, args, root: str) -> list[str]:
    s = {**common.SETTINGS, "max_new_tokens": args.max_new_tokens}
    rows = s["prompts_per_step"] * s["group"]
    loss = {"grpo": "token-mean", "rloo": "seq-mean-token-mean"}[task]  # TRL's dapo / RLOO's sequence mean
    return [f"run.root={root}", f"run.name={task}", f"model.path={args.model}", f"prompts.source={args.prompts}",
            "reward.terms=[{kind: function, function: " + str(HERE / "rl_bench_common.py") + ":lmforge_reward, "
            "kwargs: {shared: " + args.shared + "}}]",
            f"sampling.max_new_tokens={s['max_new_tokens']}", f"sampling.temperature={s['temperature']}",
            f"rl.algorithm={task}", f"rl.rollouts={args.steps}", f"rl.prompts_per_rollout={s['prompts_per_step']}",
            f"rl.group_size={s['group']}", "rl.ppo_epochs=1", f"rl.forward_batch={rows}",
            f"rl.kl_coef={s['beta'][task]}", "rl.missing_eos_penalty=null", f"rl.loss_aggregation={loss}",
            "rl.samples_every=0", f"train.batch_size={rows}", f"train.micro_batch_size={rows}",
            f"train.lr={s['lr']}", *TRAIN, *args.set]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("grpo", "rloo"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--prompts", required=True, help="rl_bench_common.dump_prompts's JSONL")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=common.SETTINGS["max_new_tokens"])
    ap.add_argument("--set", nargs="*", default=[], help="extra RLConfig overrides (KEY=VALUE)")
    args = ap.parse_args()
    sys.path.insert(0, args.shared)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    import torch
    from trl_bench import calib_gflops

    import lmforge.rl.rollout as rollout
    import lmforge.rl.source as source
    from lmforge.config import load_config
    from lmforge.stages.rl import RLConfig, rl_train

    acc = {"generation": 0.0, "scoring": 0.0, "reward": 0.0, "forwards": 0.0, "completion_tokens": 0}
    collect, forward_rows = source.collect, rollout.forward_rows

    def timed_collect(model, reference, tokenizer, reward, *a, **k):
        def timed_reward(*ra, **rk):
            t = time.perf_counter()
            try:
                return reward(*ra, **rk)
            finally:
                acc["reward"] += time.perf_counter() - t

        res = collect(model, reference, tokenizer, timed_reward, *a, **k)
        acc["generation"] += res.metrics["seconds_generation"]
        acc["scoring"] += res.metrics["seconds_scoring"]
        acc["completion_tokens"] += int(res.rows["mask"].sum())
        return res

    def timed_forwards(*a, **k):
        t = time.perf_counter()
        try:
            return forward_rows(*a, **k)
        finally:
            acc["forwards"] += time.perf_counter() - t

    source.collect, rollout.forward_rows = timed_collect, timed_forwards
    cfg = load_config(RLConfig, None, overrides(args.task, args, tempfile.mkdtemp(prefix="lmforge_rl_")))
    calib_before = calib_gflops()
    summary = rl_train(cfg)
    calib_after = calib_gflops()
    steps = summary["steps"]
    row = {"impl": "lmforge", "task": args.task, "steps": steps, "completion_tokens": acc["completion_tokens"],
           "train_tokens": summary["tokens"], "seconds": summary["train_seconds"],
           "final_loss": round(summary["train_loss"], 5),
           "reward_mean": round(summary["reward_mean_end"], 4) if summary["reward_mean_end"] is not None else None,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "calib_gflops": round((calib_before + calib_after) / 2, 1), "forwards_s": None,
           "weight_bytes": summary["weight_bytes"], "overrides": args.set, "torch_threads": torch.get_num_threads(),
           "lmforge_src": str(Path(rollout.__file__).resolve().parents[2])}
    common.per_step(row, steps, acc["generation"], acc["scoring"], acc["reward"])
    row["forwards_s"] = round(acc["forwards"] / steps, 4)  # the no-grad old/reference forwards, inside scoring
    sys.stdout = real_stdout
    print(json.dumps(row))


if __name__ == "__main__":
    main()
