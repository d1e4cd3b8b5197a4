"""``lmforge pretrain``."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, OVERWRITE, RESUME, config_from_args, print_summary


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain_cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME,
                     overwrite: bool = OVERWRITE) -> None:
        """Pre-train a model from scratch (next-token or masked-LM) on packed token shards.

        With no data.paths it trains on the built-in world. Run under `torchrun --nproc-per-node N` for data
        parallelism. Writes runs/<run.name>/ (config.yaml, metrics.jsonl, samples.jsonl, checkpoints/, final/,
        summary.json).
        """
        from ..stages.pretrain import PretrainConfig, pretrain

        cfg = config_from_args(PretrainConfig, args)
        summary = pretrain(cfg, resume=resume, overwrite=overwrite)
        print_summary("pretrain", summary)
