"""``lmforge loop CONFIG.yaml [k=v ...]``: rounds of generate → feedback → reward model → RL → eval → red team."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, config_from_args, print_summary

LOOP_HELP = "\n\n".join([
    "Run, or continue, the feedback loop: each round generates K responses per prompt from the current policy "
    "(new prompts plus the last round's red-team findings), collects feedback on them (simulated labelers, an AI "
    "judge, people in the web app), updates the reward model on all feedback so far (continuing from the last "
    "one) and runs PPO/GRPO/RLOO against it (or DPO directly), then evaluates the new policy and red-teams it.",
    "Every step writes an ordinary run folder under OUT/round-NNN/; running the command again continues at the "
    "first unfinished step (nothing done is redone, no label is made twice). Before RL the new reward model's "
    "held-out accuracy on the newest round's labels is compared with the previous reward model's; worse stops "
    "the loop unless update.on_worse_reward_model=continue. OUT/report/report.html compares every round. "
    "See docs/loop.md.",
])


def register(app: typer.Typer) -> None:
    @app.command("loop", help=LOOP_HELP)
    def loop_cmd(args: list[str] | None = CONFIG_ARGS,
                 status: bool = typer.Option(False, "--status", help="only show each round's steps and what the "
                                             "loop waits for (reads the folders and the database; runs nothing)"),
                 ) -> None:
        from ..loop.config import LoopConfig
        from ..loop.feedback import WaitingForLabels
        from ..loop.run import run_loop
        from ..loop.status import loop_status, status_line

        cfg = config_from_args(LoopConfig, args)
        if status:
            for row in loop_status(cfg):
                typer.echo(status_line(row))
            return

        def say(line: str) -> None:
            typer.echo(line, err=True)

        try:
            summary = run_loop(cfg, say)
        except WaitingForLabels as e:
            typer.echo(f"waiting: {e}")
            raise typer.Exit(0) from None
        rows = {"rounds done": summary["rounds_done"], "report": summary.get("report", "")}
        for name, r in summary["loop"].items():
            for key in ("reward_model_accuracy_newest", "attack_success_rate", "previous_findings_success_rate"):
                if r.get(key) is not None:
                    rows[f"{name} {key}"] = r[key]
        print_summary("loop", rows)
