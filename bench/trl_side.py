"""TRL 1.16 side of the benchmarks (runs in the TRL venv made by setup_trl.sh). Prints one JSON line.

    python trl_side.py lm  --packing ...   SFTTrainer on plain text (the peer for `lmforge pretrain`)
    python trl_side.py sft --packing ...   SFTTrainer, conversational prompt/completion, completion-only loss
    python trl_side.py dpo [--precompute]  DPOTrainer exactly as ../shared/bench/trl_bench.py's dpo method (sigmoid,
                                           beta 0.1, a second model copy as reference); --precompute sets
                                           precompute_ref_log_probs=True (reference log-probs of the whole train
                                           set in __init__; its seconds are added to the training seconds)

Token counting, timing (on_train_begin..on_train_end) and the matmul probe come from the shared TRL harness
(../shared/bench/trl_bench.py); the reward benchmark calls that harness directly.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                  HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", WANDB_DISABLED="true")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=("lm", "sft", "dpo"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="JSONL: {'text'} for lm, {'prompt','completion'} for sft")
    ap.add_argument("--shared", required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--save", default=None, help="save the trained model here (for bench/sft_loss_parity.py)")
    ap.add_argument("--precompute", action="store_true", help="dpo: precompute_ref_log_probs=True")
    ap.add_argument("--order-out", default=None, help="dpo: write the row indices TRL trained on, in order")
    ap.add_argument("--rows", type=int, default=None, help="dpo: train on the first N preference rows only")
    args = ap.parse_args()
    sys.path.insert(0, args.shared)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    if args.task == "dpo":
        row = dpo(args)
        sys.stdout = real_stdout
        print(json.dumps(row))
        return
    import torch
    import trl_bench as tb
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in open(args.data)]
    ds = Dataset.from_list(rows)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    task_kw = ({"dataset_text_field": "text", "completion_only_loss": False} if args.task == "lm"
               else {"completion_only_loss": True})
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_steps=args.steps, per_device_train_batch_size=args.batch,
                    gradient_accumulation_steps=1, bf16=False, fp16=False, use_cpu=True,
                    gradient_checkpointing=False, logging_strategy="no", save_strategy="no", eval_strategy="no",
                    report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, data_seed=0,
                    learning_rate=args.lr, max_length=args.seq, packing=args.packing, **task_kw)
    trainer = tb.instrument(SFTTrainer)(model=model, args=cfg, train_dataset=ds, processing_class=tok,
                                        callbacks=[tb.make_timer_callback()])
    calib_before = tb.calib_gflops()
    out = trainer.train()
    calib_after = tb.calib_gflops()
    seconds = tb.S.t_end - tb.S.t_begin
    if args.save:
        trainer.save_model(args.save)
        tok.save_pretrained(args.save)
    sys.stdout = real_stdout
    print(json.dumps({
        "impl": "trl", "task": args.task, "packing": args.packing, "steps": trainer.state.global_step,
        "train_tokens": tb.S.train_tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(tb.S.train_tokens / seconds, 1), "final_loss": round(float(tb.S.last_loss), 5),
        "mean_loss": round(float(out.training_loss), 5), "peak_rss_mb": round(tb._peak_rss_mb(), 1),
        "calib_gflops": round((calib_before + calib_after) / 2, 1),
        "params": sum(p.numel() for p in model.parameters()),
    }))


def dpo(args) -> dict:
    """DPOTrainer with trl_bench.py's settings; records which rows each batch held (matched by their token ids),
    so the lmforge side can train on the same pairs in the same order."""
    import torch
    import trl_bench as tb
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    import data as shared_data

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    cfg = DPOConfig(output_dir=tempfile.mkdtemp(), max_steps=args.steps, per_device_train_batch_size=args.batch,
                    gradient_accumulation_steps=1, bf16=False, fp16=False, use_cpu=True,
                    gradient_checkpointing=False, logging_strategy="no", save_strategy="no", eval_strategy="no",
                    report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, data_seed=0,
                    learning_rate=args.lr, max_length=args.seq, beta=0.1,
                    precompute_ref_log_probs=args.precompute)
    pre = {"seconds": 0.0, "rows": 0}

    class Timed(DPOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            t = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            pre["seconds"] += time.perf_counter() - t
            pre["rows"] += len(dataset)
            return out

    rows = shared_data.preference_dataset(fmt="conversational")
    rows = rows.select(range(args.rows)) if args.rows else rows
    trainer = tb.instrument(Timed)(model=model, args=cfg, train_dataset=rows, processing_class=tok,
                                   callbacks=[tb.make_timer_callback()])
    ds = trainer.train_dataset
    key = {(tuple(p), tuple(c), tuple(r)): i
           for i, (p, c, r) in enumerate(zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"], strict=True))}
    order: list[int] = []
    collator = trainer.data_collator

    def recording(examples):
        order.extend(key[(tuple(e["prompt_ids"]), tuple(e["chosen_ids"]), tuple(e["rejected_ids"]))]
                     for e in examples)
        return collator(examples)
    trainer.data_collator = recording
    calib_before = tb.calib_gflops()
    out = trainer.train()
    calib_after = tb.calib_gflops()
    loop = tb.S.t_end - tb.S.t_begin
    seconds = loop + pre["seconds"]  # with --precompute its pass is part of the work, as our reference pass is
    order = order[:args.steps * args.batch]  # the dataloader may collate one batch ahead
    if args.order_out:
        with open(args.order_out, "w") as f:
            json.dump(order, f)
    return {
        "impl": "trl", "task": "dpo", "precompute": args.precompute, "steps": trainer.state.global_step,
        "train_tokens": tb.S.train_tokens, "sequences": tb.S.sequences, "pairs": tb.S.sequences // 2,
        "seconds": round(seconds, 3), "loop_seconds": round(loop, 3),
        "reference_seconds": round(pre["seconds"], 3) if args.precompute else None,
        "reference_pairs": pre["rows"] if args.precompute else None,
        "tokens_per_s": round(tb.S.train_tokens / seconds, 1),
        "pairs_per_s": round(tb.S.sequences / 2 / seconds, 3),
        "final_loss": round(float(tb.S.last_loss), 5), "mean_loss": round(float(out.training_loss), 5),
        "peak_rss_mb": round(tb._peak_rss_mb(), 1), "calib_gflops": round((calib_before + calib_after) / 2, 1),
        "params": sum(p.numel() for p in model.parameters()), "learning_rate": cfg.learning_rate,
        "ref_model_loaded": trainer.ref_model is not None,
        "order_sha": hashlib.sha256(json.dumps(order).encode()).hexdigest()[:12],
    }


if __name__ == "__main__":
    main()
