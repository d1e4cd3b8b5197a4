"""``lmforge dpo [CONFIG] [k=v ...]``: tune a chat model on preference pairs with a DPO-family loss."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, OVERWRITE, RESUME, config_from_args, print_summary


def register(app: typer.Typer) -> None:
    @app.command("dpo")
    def dpo_cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME, overwrite: bool = OVERWRITE) -> None:
        """Direct preference optimisation (full or LoRA) from preference JSONL (pairs, rankings; KTO: good/bad).

        Keys: model.path (required); data.train=[FILE...] (required), data.eval, data.eval_fraction=0.1,
        data.max_length=512, data.ranking_pairs=all|best_vs_rest; loss.name=dpo|cdpo|robust|ipo|kto|orpo|simpo,
        loss.beta, loss.label_smoothing, loss.gamma, loss.desirable_weight, loss.undesirable_weight;
        peft.method=none|lora|dora, peft.r; train.steps, train.lr, train.batch_size; run.name=dpo.
        Writes runs/RUN_NAME/: config.yaml, data_report.json, reference_logprobs.pt (the used rows only; reused by
        --resume), metrics.jsonl, checkpoints/, final/ (model, or adapter), summary.json. See docs/dpo.md.
        """
        from ..stages.dpo import DPOConfig, dpo

        cfg = config_from_args(DPOConfig, args)
        print_summary("dpo", dpo(cfg, resume=resume, overwrite=overwrite))
