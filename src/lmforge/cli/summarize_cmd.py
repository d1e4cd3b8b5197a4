"""``lmforge summarize``: one summary.json from an eval's results, the best candidate chosen (and exported)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import print_summary

SUMMARIZE_HELP = "\n\n".join([
    "Write OUT (a summary.json) from 'lmforge eval' RESULTS (its results.json): every --key KEY=FIGURE of the "
    "chosen candidate as KEY and of --base as KEY_base, the same for every model under 'models', their intervals, "
    "and which candidate was chosen and why ('final_model'); with --timings (the file LMFORGE_TIMINGS=FILE made "
    "every lmforge command append to) each command's seconds and peak resident memory, seconds_total and "
    "peak_rss_gb.",
    "The choice: the candidate meeting the most --target KEY>=VALUE (or <=, >, <) wins; a tie goes to the higher "
    "--pick KEY (-KEY: the lower), then to the candidate given first. --export DIR writes the chosen model as a "
    "plain Hugging Face folder (an adapter merged into its base), as 'lmforge export' does.",
])


def register(app: typer.Typer) -> None:
    @app.command("summarize", help=SUMMARIZE_HELP)
    def summarize_cmd(results: Path = typer.Argument(..., help="an 'lmforge eval' results.json"),
                      out: Path = typer.Option(..., "--out", "-o", help="the summary.json to write"),
                      base: str = typer.Option(..., "--base", help="the model the others are compared to"),
                      candidate: list[str] = typer.Option(..., "--candidate", help="a model that may be chosen "
                                                          "(repeatable, in order of preference on a tie)"),
                      key: list[str] = typer.Option([], "--key", help="KEY=FIGURE: report FIGURE as KEY "
                                                    "(FIGURE.vs: its paired difference from --base)"),
                      target: list[str] = typer.Option([], "--target", help="KEY>=VALUE, KEY<=VALUE, ..."),
                      pick: str | None = typer.Option(None, "--pick", help="KEY (or -KEY) breaking ties"),
                      timings: Path | None = typer.Option(None, "--timings", help="LMFORGE_TIMINGS file"),
                      since: float | None = typer.Option(None, "--since", help="the recipe's start (Unix "
                                                         "seconds, e.g. $(date +%s)): seconds_total is the wall "
                                                         "time since then, not the sum over commands"),
                      export: Path | None = typer.Option(None, "--export", help="write the chosen model here"),
                      overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --export"),
                      ) -> None:
        import resource
        import time

        from ..eval.summary import parse_pairs, parse_targets, read_timings, summarize
        from ..runs import atomic_write_text

        t0 = time.time()
        keys, goals = parse_pairs(key, "--key"), parse_targets(target)
        rows = read_timings(timings) if timings is not None else None
        summary = summarize(results, base=base, candidates=candidate, keys=keys, targets=goals, pick=pick,
                            timings=rows)
        if export is not None:
            from ..config import load_config
            from ..stages.export import ExportConfig
            from ..stages.export import export as export_model

            cfg = load_config(ExportConfig, None, [f"source={summary['final_model']['source']}", f"out={export}"])
            done = export_model(cfg, overwrite=overwrite)
            summary["final_model"]["export"] = {k: done[k] for k in ("out", "kind", "base", "params")}
        if rows is not None:  # this command's own cost (the export above) counts too
            own = {"command": "summarize", "seconds": round(time.time() - t0, 2), "exit": 0, "argv": [],
                   "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}
            summary["stages"].append(own)
            summary["seconds_commands"] = round(summary["seconds_total"] + own["seconds"], 2)
            summary["seconds_total"] = (round(time.time() - since, 2) if since is not None
                                        else summary["seconds_commands"])
            summary["peak_rss_gb"] = max(summary["peak_rss_gb"] or 0.0, own["peak_rss_gb"])
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(summary, indent=2) + "\n")
        print_summary("summarize", {k: v for k, v in summary.items() if not isinstance(v, dict | list)}
                      | {"final_model": summary["final_model"]["name"]})
        typer.echo(f"wrote {out}")
