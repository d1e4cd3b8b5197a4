"""``lmforge sft [CONFIG] [k=v ...]`` and ``lmforge sft inspect [CONFIG] [k=v ...]``."""
from __future__ import annotations

import typer

from .common import (
    CONFIG_ARGS,
    OVERWRITE,
    RESUME,
    DefaultCommandGroup,
    config_from_args,
    print_summary,
)


def register(app: typer.Typer) -> None:
    sft_app = typer.Typer(cls=DefaultCommandGroup, no_args_is_help=False, add_completion=False,
                          help="Supervised fine-tuning: `lmforge sft [CONFIG.yaml] [KEY=VALUE ...]` trains; "
                               "`lmforge sft inspect ...` shows which tokens carry loss.")

    @sft_app.command("train")
    def train_cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME,
                  overwrite: bool = OVERWRITE) -> None:
        """Fine-tune a base model into an assistant (full or LoRA/DoRA/QLoRA adapter).

        Keys: model.path=DIR|HUB_ID|FILE.gguf (required); data.sources=[{path: FILE, format: auto|messages|alpaca|prompt_completion|text, weight: 1.0, max_examples: N, system_prompt: TEXT} or {world: sft|safety|corpus, weight: 1.0}]; data.val_fraction=0.05 (held out of each file source: val_loss and samples at each eval; 0: off); data.max_length=512; data.truncation=drop|truncate; data.packing=true; data.chat_template; peft.method=none|lora|dora|qlora, peft.r, peft.alpha, peft.target_modules, peft.merge; protect.freeze_embeddings=none|all|except_special; protect.freeze_layers=N; epochs=2 (null: train.steps); train.lr, train.batch_size, ...; eval.nshot=3, eval.heldout_facts; run.name=sft.

        Writes runs/RUN_NAME/: config.yaml, data_report.json, metrics.jsonl, samples.jsonl, checkpoints/, final/ (model, or adapter for PEFT), merged/ (peft.merge=true), summary.json.
        """
        from ..stages.sft import SFTConfig, sft

        cfg = config_from_args(SFTConfig, args)
        summary = sft(cfg, resume=resume, overwrite=overwrite)
        print_summary("sft", summary)

    @sft_app.command("inspect")
    def inspect_cmd(args: list[str] | None = CONFIG_ARGS,
                    n: int = typer.Option(3, "-n", help="how many examples to show"),
                    start: int = typer.Option(0, "--start", help="index of the first example shown")) -> None:
        """Show which tokens carry loss in a few rendered examples (same config as training).

        Loss-bearing tokens are bold green and wrapped in [[ ]]; the counts of dropped and truncated examples
        of the whole mixture follow."""
        from ..stages.sft import SFTConfig
        from ..stages.sft_inspect import inspect

        cfg = config_from_args(SFTConfig, args)
        inspect(cfg, n=n, start=start)

    @sft_app.callback(invoke_without_command=True)
    def default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:  # bare `lmforge sft`: train with the defaults (says what is missing)
            train_cmd(args=None, resume=False, overwrite=False)

    app.add_typer(sft_app, name="sft")
