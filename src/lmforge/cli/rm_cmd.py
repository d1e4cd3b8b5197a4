"""``lmforge rm`` (train a reward model) and ``lmforge rm score`` (score prompt/response pairs with one)."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import CONFIG_ARGS, OVERWRITE, RESUME, DefaultCommandGroup, config_from_args, print_summary


def register(app: typer.Typer) -> None:
    rm = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=True,
                     help="Reward models: `lmforge rm CONFIG.yaml KEY=VALUE...` trains one, `lmforge rm score MODEL "
                          "INPUT.jsonl` scores with one.")
    app.add_typer(rm, name="rm")

    @rm.command("train")
    def train_cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME,
                  overwrite: bool = OVERWRITE) -> None:
        """Train a reward model from preference JSONL (pairs, rankings, Likert, binary; mixed).

        Needs model.path (a causal LM or encoder folder, .gguf or hub id) and data.train (files); e.g.
        `lmforge rm model.path=runs/base/final data.train=\\[fb.jsonl] data.eval=\\[heldout.jsonl]`. Writes
        runs/<run.name>/ with final/ (a plain HF AutoModelForSequenceClassification folder, or with
        model.head=generative an AutoModelForCausalLM verifier, + reward.json), eval_report.json,
        calibration.png and summary.json.
        """
        from ..stages.rm import RMConfig, train_rm

        cfg = config_from_args(RMConfig, args)
        summary = train_rm(cfg, resume=resume, overwrite=overwrite)
        print_summary("reward model", summary)

    @rm.command("score")
    def score_cmd(model: Path = typer.Argument(..., help="a reward-model folder (runs/<name>/final)"),
                  inputs: Path = typer.Argument(..., help="JSONL rows with 'prompt' (text or chat messages) and "
                                                "'response' (or 'responses': a list)"),
                  out: Path | None = typer.Option(None, "--out", "-o", help="output JSONL (default: "
                                                     "<input>.scored.jsonl)"),
                  batch_size: int = typer.Option(32, "--batch-size", min=1, help="sequences per forward pass"),
                  normalize: bool = typer.Option(False, "--normalize", help="also write (reward - mean) / std "
                                                 "with the mean/std saved in the model"),
                  ) -> None:
        """Score (prompt, response) rows of a JSONL with a trained reward model, in batches.

        Writes each row back with 'reward' added (a list for 'responses'), 'scores' (every criterion head by name)
        when the model has criterion heads, and 'reward_normalized' with --normalize.
        """
        from ..stages.rm_score import score_file

        report = score_file(model, inputs, out, batch_size=batch_size, normalize=normalize)
        print_summary("rm score", report)
