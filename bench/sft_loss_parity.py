"""SFT loss per trained token against TRL 1.16: train both on the same rows for the same number of trained
tokens, then score both models with one evaluator on rows neither saw.

    python bench/sft_loss_parity.py [--steps 50] [--heldout 100]

TRL runs `SFTTrainer` with its packing on (completion-only loss, no gradient checkpointing) for --steps steps;
lmforge runs the same steps, or, if that trains more than 3 % more or fewer tokens, as many steps as match
TRL's trained tokens. The evaluator (plain transformers, in TRL's venv so neither side's code scores
itself) renders each held-out row with the tokenizer's chat template and averages the cross-entropy over the
completion tokens. Appends a row to bench/results/sft_loss_parity.jsonl and prints a table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

EVAL = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, rows_path = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
total, n = 0.0, 0
with torch.no_grad():
    for line in open(rows_path):
        row = json.loads(line)
        prompt = tok.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True)
        if not isinstance(prompt, list):
            prompt = prompt["input_ids"]
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True)
        if not isinstance(full, list):
            full = full["input_ids"]
        assert full[:len(prompt)] == prompt, "the template does not extend the prompt"
        ids = torch.tensor([full[:256]])
        labels = ids.clone()
        labels[0, :len(prompt)] = -100
        if (labels != -100).sum() < 2:
            continue
        logits = model(ids).logits[0, :-1]
        target = labels[0, 1:]
        keep = target != -100
        total += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
        n += int(keep.sum())
print(json.dumps({"heldout_loss": total / n, "heldout_tokens": n}))
"""


def run(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50, help="TRL's steps")
    ap.add_argument("--heldout", type=int, default=100, help="rows kept out of training, for the evaluation")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "bench"))
    args = ap.parse_args()
    work = Path(subprocess.run(["bash", str(HERE / "setup_trl.sh")], capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1])
    rows_file = work / "sft_rows.jsonl"
    if not rows_file.exists():
        sys.exit("run `python bench/compare.py sft` once first: it writes the SFT rows")
    rows = rows_file.read_text().splitlines()
    tmp = Path(tempfile.mkdtemp(prefix="sft_parity_"))
    train, held = tmp / "train.jsonl", tmp / "heldout.jsonl"
    train.write_text("\n".join(rows[:-args.heldout]) + "\n")
    held.write_text("\n".join(rows[-args.heldout:]) + "\n")
    trl_py, model = str(work / "trl-env" / "bin" / "python"), str(work / "tiny_llama")
    common = ["--model", model, "--data", str(train), "--shared", args.shared, "--batch", str(args.batch),
              "--seq", str(args.seq), "--lr", str(args.lr)]
    trl = run([trl_py, str(HERE / "trl_side.py"), "sft", "--packing", "--steps", str(args.steps), *common,
               "--save", str(tmp / "trl")])
    ours_cmd = [sys.executable, str(HERE / "lmforge_side.py"), "sft", *common, "--save", str(tmp / "lmforge")]
    ours = run(ours_cmd + ["--steps", str(args.steps)])
    if abs(ours["train_tokens"] / trl["train_tokens"] - 1) > 0.03:  # match the trained tokens, not the steps
        steps = max(1, round(args.steps * trl["train_tokens"] / ours["train_tokens"]))
        ours = run(ours_cmd + ["--steps", str(steps)])
    base_eval = run([trl_py, "-c", EVAL, model, str(held)])
    result = {"steps": {"trl": trl["steps"], "lmforge": ours["steps"]},
              "train_tokens": {"trl": trl["train_tokens"], "lmforge": ours["train_tokens"]},
              "heldout_loss": {"base": round(base_eval["heldout_loss"], 5)},
              "heldout_tokens": base_eval["heldout_tokens"], "lr": args.lr, "heldout_rows": args.heldout}
    for name in ("trl", "lmforge"):
        result["heldout_loss"][name] = round(run([trl_py, "-c", EVAL, str(tmp / name), str(held)])["heldout_loss"], 5)
    out = HERE / "results" / "sft_loss_parity.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))
    print("| | steps | trained tokens | held-out completion loss |\n|---|---|---|---|")
    print(f"| base model | 0 | 0 | {result['heldout_loss']['base']} |")
    for name in ("trl", "lmforge"):
        print(f"| {name} | {result['steps'][name]} | {result['train_tokens'][name]:,} | "
              f"{result['heldout_loss'][name]} |")


if __name__ == "__main__":
    main()
