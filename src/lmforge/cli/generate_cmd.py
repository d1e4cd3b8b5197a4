"""``lmforge generate``."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, OVERWRITE, config_from_args, print_summary


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(args: list[str] | None = CONFIG_ARGS, overwrite: bool = OVERWRITE) -> None:
        """K responses per prompt from a model, stored as a labeling batch.

        Keys: model=PATH, HUB_ID or world (world: the built-in world's graded candidate responses, no model); prompts=FILE.jsonl or world (lines {"prompt": text or messages} or {"messages": list}); k=4; limit=N; sampling.temperature=1.0, sampling.top_p=0.95, sampling.top_k=0, sampling.max_new_tokens=128, sampling.seed=0; world.split=train, world.n=32, world.kinds; batch_size=8; dtype; device; run.name=generate; run.root=runs.

        Writes runs/RUN_NAME/ with config.yaml, batch.jsonl (per prompt: id, prompt messages, the K responses, sampling settings, model id, world meta) and summary.json. Load it with: lmforge label add-batch runs/RUN_NAME; its --mode chooses what labelers give (rank, rank+overall, rank+criteria: the default, good-bad).
        """  # noqa: E501
        from ..stages.generate import GenerateConfig, generate_batch

        cfg = config_from_args(GenerateConfig, args)
        summary = generate_batch(cfg, overwrite=overwrite)
        print_summary("generate", summary)
