"""``lmforge demo``."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(out: Path = typer.Option(Path("runs/demo"), "--out", help="folder for every stage's run"),
                 seed: int = typer.Option(0, "--seed", help="world, data order and initialisation seed"),
                 resume: bool = typer.Option(False, "--resume", help="skip finished stages, continue the "
                                             "interrupted one from its last checkpoint"),
                 stages: str | None = typer.Option(None, "--stages", help="comma-separated subset to run "
                                                   "(loop: only the --loop rounds, on a demo folder that has sft/ "
                                                   "and reward_model/)"),
                 loop: int = typer.Option(0, "--loop", min=0, help="then N rounds of lmforge loop (simulated "
                                          "labelers, a red-team pass each round) into OUT/loop; summary.json "
                                          "gets loop.round_N (docs/loop.md)")) -> None:
        """Run the whole pipeline on the built-in world (no download): pre-training, then every later stage.

        Writes OUT/summary.json with each stage's headline numbers, OUT/report/report.html (SFT, DPO and PPO
        side by side with 95 % intervals, every stage's training curves) and prints a summary table.
        """
        from rich.console import Console
        from rich.table import Table

        from ..stages.demo import STAGES, demo

        only = [s.strip() for s in stages.split(",")] if stages else None
        for name in only or []:
            if name == "loop" and not loop:
                raise typer.BadParameter("stage 'loop' needs --loop N (the rounds to run)")
            if name not in STAGES and name != "loop":
                raise typer.BadParameter(f"unknown stage '{name}' (stages: {', '.join(STAGES)}, loop)")
        summary = demo(out, seed=seed, resume=resume, only=only, loop=loop)
        table = Table(title=f"lmforge demo — {out}/summary.json")
        for col in ("stage", "metric", "value"):
            table.add_column(col, justify="right" if col == "value" else "left")
        for stage, metrics in summary["stages"].items():
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    table.add_row(stage, key, f"{value:.4g}" if isinstance(value, float) else str(value))
                    stage = ""
        table.add_row("total", "seconds", f"{summary['seconds_total']:.0f}")
        Console().print(table)
        for stage in ("report", "loop"):
            report = summary["stages"].get(stage, {}).get("report")
            if report:
                Console().print(f"{stage} report: {report}")
