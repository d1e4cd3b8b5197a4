"""TRL 1.16 side of the GRPO / RLOO benchmark (bench/rl_bench_common.py has the settings). Prints one JSON line.

    python rl_bench_trl.py grpo|rloo --model DIR --shared ../shared/bench --steps 10

``GRPOTrainer`` / ``RLOOTrainer`` exactly as ../shared/bench/trl_bench.py's grpo / rloo methods (its token
counting and on_train_begin..on_train_end timer), with timers around three of the trainer's methods:
``_generate_single_turn`` (generation: left-padding, ``model.generate``, EOS masking), ``_calculate_rewards``
(the reward function) and ``_generate_and_score_completions`` (generation + rewards + the no-grad old /
reference log-prob forwards + advantages); scoring = the last minus generation, training = the loop's rest.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                  HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", WANDB_DISABLED="true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rl_bench_common as common  # noqa: E402


def timed(obj, name: str, acc: dict, key: str) -> None:
    """Replace the bound method ``obj.name`` by one that adds its wall time to ``acc[key]``."""
    orig = getattr(obj, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t

    setattr(obj, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("grpo", "rloo"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=common.SETTINGS["max_new_tokens"])
    args = ap.parse_args()
    sys.path.insert(0, args.shared)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    import datasets
    import torch
    import transformers
    import trl_bench as tb
    from transformers import AutoModelForCausalLM, AutoTokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    if args.task == "grpo":
        from trl import GRPOConfig as Cfg
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Cfg
        from trl import RLOOTrainer as Trainer
    s = {**common.SETTINGS, "max_new_tokens": args.max_new_tokens}
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    ds = common.shared_data(args.shared).prompt_dataset(fmt="conversational")
    cfg = Cfg(output_dir=tempfile.mkdtemp(prefix="trl_rl_"), max_steps=args.steps,
              per_device_train_batch_size=s["prompts_per_step"] * s["group"], gradient_accumulation_steps=1,
              bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False, logging_strategy="no",
              save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
              dataloader_num_workers=0, seed=0, data_seed=0, learning_rate=s["lr"], num_generations=s["group"],
              max_completion_length=s["max_new_tokens"], temperature=s["temperature"], beta=s["beta"][args.task])
    trainer = tb.instrument(Trainer)(model=model, reward_funcs=common.trl_reward(args.shared), args=cfg,
                                     train_dataset=ds, processing_class=tok, callbacks=[tb.make_timer_callback()])
    acc = {"generation": 0.0, "rollout": 0.0, "reward": 0.0}
    timed(trainer, "_generate_single_turn", acc, "generation")
    timed(trainer, "_generate_and_score_completions", acc, "rollout")
    timed(trainer, "_calculate_rewards", acc, "reward")
    calib_before = tb.calib_gflops()
    out = trainer.train()
    calib_after = tb.calib_gflops()
    seconds = tb.S.t_end - tb.S.t_begin
    steps = trainer.state.global_step
    m = tb.S.trl_metrics
    row = {"impl": "trl", "task": args.task, "trainer": Trainer.__name__, "steps": steps,
           "completion_tokens": tb.S.generated_tokens, "train_tokens": tb.S.train_tokens,
           "sequences": tb.S.sequences, "seconds": round(seconds, 3),
           "final_loss": round(float(tb.S.last_loss), 5), "mean_loss": round(float(out.training_loss), 5),
           "reward_mean": round(sum(m["reward"]) / len(m["reward"]), 4) if m.get("reward") else None,
           "peak_rss_mb": round(tb._peak_rss_mb(), 1), "calib_gflops": round((calib_before + calib_after) / 2, 1),
           "beta": cfg.beta, "loss_type": getattr(cfg, "loss_type", None),
           "ref_model_loaded": getattr(trainer, "ref_model", None) is not None,
           "torch_threads": torch.get_num_threads()}
    common.per_step(row, steps, acc["generation"], acc["rollout"] - acc["generation"], acc["reward"])
    sys.stdout = real_stdout
    print(json.dumps(row))


if __name__ == "__main__":
    main()
