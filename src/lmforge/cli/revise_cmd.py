"""``lmforge revise``: a model's own answers as SFT and preference data (context distillation, critique -> revision)."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import print_summary

REVISE_HELP = "\n\n".join([
    "Answer every prompt of PROMPTS with MODEL, optionally again under a system prompt (--system: context "
    "distillation, the prompt is not kept in the data; --prefill: the answer starts with an opener and the "
    "model writes the rest) and through critique -> revision rounds under written "
    "principles (--principles FILE.yaml, a list of {name, critique, revision} requests: constitutional AI's "
    "supervised stage); keep per prompt the latest answer that meets --expect (refuse: harmful prompts; answer: "
    "benign ones; any), judged by the refusal detector, and write OUT/sft.jsonl (for 'lmforge sft'), "
    "OUT/pairs.jsonl (that answer over one that fails the expectation, for 'lmforge rm' and 'lmforge dpo'), "
    "OUT/records.jsonl (every candidate and critique) and OUT/summary.json.",
    "PROMPTS: .csv (goal/prompt/instruction/question column), .jsonl/.json/.parquet (prompt, messages, "
    "instruction + input, goal or question; meta.expect per row overrides --expect) or .txt (one per line).",
])


def register(app: typer.Typer) -> None:
    @app.command("revise", help=REVISE_HELP)
    def revise_cmd(model: str = typer.Argument(..., help="model folder, .gguf file, hub id or adapter folder"),
                   prompts: Path = typer.Argument(..., help="prompt file"),
                   out: Path = typer.Option(..., "--out", "-o", help="output folder"),
                   system: str | None = typer.Option(None, "--system", help="system prompt for context "
                                                     "distillation (@FILE reads it from a file)"),
                   principles: Path | None = typer.Option(None, "--principles", help="YAML list of {name, "
                                                          "critique, revision}"),
                   rounds: int = typer.Option(1, "--rounds", min=0, help="critique -> revision rounds"),
                   expect: str = typer.Option("any", "--expect", help="refuse, answer or any"),
                   limit: int | None = typer.Option(None, "--limit", min=1, help="only the first N prompts"),
                   max_new_tokens: int = typer.Option(160, "--max-new-tokens", min=1),
                   temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0: greedy"),
                   seed: int = typer.Option(0, "--seed", help="sampling and principle-drawing seed"),
                   samples: int = typer.Option(1, "--samples", min=1, help="answers drawn per prompt under the "
                                               "system prompt and per revision (needs --temperature > 0): all "
                                               "are candidates"),
                   repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", min=0.01,
                                                            help="CTRL repetition penalty; 1: off"),
                   require: int = typer.Option(0, "--require", min=0, help="fail (exit 2, after writing the "
                                               "files) when fewer prompts than this keep an answer"),
                   prefill: str | None = typer.Option(None, "--prefill", help="an opener the answers under "
                                                      "--system start with, the model writing the rest "
                                                      "(response priming); @FILE: one opener per line, one "
                                                      "drawn per prompt"),
                   batch_size: int = typer.Option(8, "--batch-size", min=1),
                   dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                   ) -> None:
        from ..errors import InputError
        from ..stages.revise import revise

        if system is not None and system.startswith("@"):
            path = Path(system[1:])
            if not path.is_file():
                raise InputError("system prompt file not found", file=path, field="system")
            system = path.read_text(encoding="utf-8").strip()
        openers = None
        if prefill is not None:
            if prefill.startswith("@"):
                path = Path(prefill[1:])
                if not path.is_file():
                    raise InputError("prefill file not found", file=path, field="prefill")
                openers = path.read_text(encoding="utf-8").splitlines()
            else:
                openers = [prefill]
        summary = revise(model, prompts, out, system=system, prefill=openers, principles=principles, rounds=rounds, expect=expect,
                         limit=limit, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                         batch_size=batch_size, samples=samples, repetition_penalty=repetition_penalty,
                         require=require, dtype=dtype)
        print_summary("revise", {k: v for k, v in summary.items() if not isinstance(v, dict)})
        typer.echo(f"wrote {out}/sft.jsonl, pairs.jsonl, records.jsonl, summary.json")
