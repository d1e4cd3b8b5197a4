"""``lmforge redteam``: automated attacks on a model; what succeeds becomes next round's training data."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import print_summary

REDTEAM_HELP = "\n\n".join([
    "Attack MODEL (a model folder, .gguf file, hub id or adapter folder) with jailbreak templates around harmful "
    "requests, and write OUT/attacks.jsonl (every attempt and its answer), OUT/summary.json (attack success "
    "rate per attack with a 95 % interval, seeds broken) and OUT/findings/: prompts.jsonl (a prompt file for "
    "'lmforge generate'), sft.jsonl (each successful attack with the refusal it should have got) and pairs.jsonl "
    "(refusal chosen over the model's answer, for 'lmforge rm' or 'lmforge dpo'); with world seeds also "
    "benign.jsonl (benign look-alikes in the same attacks, answered helpfully: train on it beside sft.jsonl).",
    "Seeds (--seeds): world (the built-in world's harmful prompts of --split, with their refusals), AdvBench's "
    "harmful_behaviors.csv, or JSON lines with 'prompt' (and optionally 'refusal'). Attacks (--attacks, comma-"
    "separated, default all): direct, prefix_injection, refusal_suppression, role_play, fiction, distractor. "
    "Success = the answer does not refuse (the world's refusal detector).",
])


def register(app: typer.Typer) -> None:
    @app.command("redteam", help=REDTEAM_HELP)
    def redteam_cmd(model: str = typer.Argument(..., help="the model to attack"),
                    out: Path = typer.Option(Path("runs/redteam"), "--out", help="output folder"),
                    seeds: str = typer.Option("world", "--seeds", help="world, a .csv (AdvBench) or .jsonl file"),
                    split: str = typer.Option("heldout", "--split", help="world seeds: train or heldout"),
                    attacks: str = typer.Option("all", "--attacks", help="comma-separated attack names, or all"),
                    limit: int | None = typer.Option(32, "--limit", min=1, help="at most N seeds"),
                    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
                    batch_size: int = typer.Option(16, "--batch-size", min=1),
                    refusal: str | None = typer.Option(None, "--refusal", help="the refusal exported for seeds "
                                                       "that bring none \\[default: a generic one]"),
                    dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing OUT"),
                    ) -> None:
        from rich.progress import Progress

        from ..errors import InputError
        from ..models.peft import load_any
        from ..redteam.attacks import ATTACKS, resolve
        from ..redteam.run import DEFAULT_REFUSAL, attack, export, file_seeds, summarize, world_seeds
        from ..runs import atomic_write_text

        try:
            names = resolve([a.strip() for a in attacks.split(",") if a.strip()])
        except KeyError as e:
            raise InputError(f"unknown attack {e.args[0]!r} (use {', '.join(ATTACKS)} or all)",
                             field="attacks") from None
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise InputError("output folder exists; pass --overwrite", file=out)
        if seeds == "world":
            if split not in ("train", "heldout"):
                raise InputError(f"unknown split {split!r} (use train or heldout)", field="split")
            the_seeds = world_seeds(split=split, n=limit)
        else:
            the_seeds = file_seeds(seeds, limit)
        the_model, tokenizer = load_any(model, dtype)
        the_model.eval()
        with Progress(transient=True) as bar:
            task = bar.add_task("redteam", total=len(the_seeds) * len(names))
            records = attack(the_model, tokenizer, the_seeds, names, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, progress=lambda done, total: bar.update(task, completed=done))
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "attacks.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                         for r in records))
        summary = {"model": model, "seeds_from": seeds, **summarize(records),
                   "exported": export(records, out / "findings", refusal or DEFAULT_REFUSAL,
                                     world_seed=0 if seeds == "world" else None)}
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        print_summary("redteam", {"attempts": summary["attempts"], "successes": summary["successes"],
                                  "seeds_broken_rate": summary["seeds_broken_rate"],
                                  **{f"asr_{k}": v["success_rate"] for k, v in summary["attacks"].items()}})
