"""``lmforge eval``'s output: ``results.json`` (the source of truth), PNG plots and one self-contained
``report.html`` (images inline, no scripts): HHH bars per model with 95 % intervals, the training curves of
every stage found in the run folders given, and the models' answers to the same prompts side by side."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from ..runs import atomic_write_text
from .hhh import GROUPS

CURVE_KEYS = ("loss", "reward", "kl", "len", "accuracy")  # metric-name fragments worth a curve


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def hhh_plot(results: list[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: one panel per HHH group, one bar per (figure, model), whiskers = 95 % interval."""
    names = {g: [] for g in GROUPS}
    for res in results:
        for f in res["figures"]:
            if f["name"] not in names[f["group"]]:
                names[f["group"]].append(f["name"])
    groups = [g for g in GROUPS if names[g]]
    if not groups:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    width = 0.8 / max(len(results), 1)
    for ax, group in zip(axes[0], groups):
        for m, res in enumerate(results):
            by = {f["name"]: f for f in res["figures"]}
            xs, ys, err = [], [], [[], []]
            for i, name in enumerate(names[group]):
                f = by.get(name)
                if f is None:
                    continue
                xs.append(i + (m - (len(results) - 1) / 2) * width)
                ys.append(f["value"])
                err[0].append(max(0.0, f["value"] - f["lo"]) if f["lo"] == f["lo"] else 0.0)
                err[1].append(max(0.0, f["hi"] - f["value"]) if f["hi"] == f["hi"] else 0.0)
            ax.bar(xs, ys, width, yerr=err, capsize=3, label=res["name"])
        ax.set_xticks(range(len(names[group])))
        ax.set_xticklabels([n.replace("_", "\n", 1) + (" ↓" if _lower(results, n) else "")
                            for n in names[group]], fontsize=7)
        ax.set_title(group)
        if group != "fluency":  # rates and probabilities: the full scale, so a 0 reads as 0
            ax.set_ylim(0, 1.05)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _lower(results, name: str) -> bool:
    return any(not f["higher_is_better"] for r in results for f in r["figures"] if f["name"] == name)


PREFERRED = ("loss", "val_loss", "reward_mean", "kl_ref", "response_length", "accuracy")


def curve_keys(rows: list[dict[str, Any]], most: int = 6) -> list[str]:
    """The metrics worth a panel: the usual names first (loss, reward, KL to the reference, length), then
    others containing loss / reward / kl / len, at most ``most``."""
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("step", "time")}
    first = [k for k in PREFERRED if k in numeric]
    rest = sorted(k for k in numeric - set(first) if any(c in k.lower() for c in CURVE_KEYS))
    return (first + rest)[:most]


def curve_plots(run_dirs: list[Path], out: Path) -> list[Path]:
    """One PNG per stage folder (any folder below ``run_dirs`` with a ``metrics.jsonl``): a panel per metric
    of :func:`curve_keys`, training split against step (evaluation points marked)."""
    pngs = []
    for root in run_dirs:
        for metrics in sorted(Path(root).rglob("metrics.jsonl")):
            rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            keys = curve_keys(rows)
            if not keys:
                continue
            plt = _plt()
            fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
            for ax, key in zip(axes[0], keys):
                for split, style in (("train", "-"), ("eval", "o--")):
                    pts = [(r["step"], r[key]) for r in rows if r.get("split", "train") == split and key in r]
                    if pts:
                        ax.plot(*zip(*pts), style, label=split, markersize=3)
                ax.set_title(key, fontsize=8)
                ax.tick_params(labelsize=7)
            stage = metrics.parent.relative_to(Path(root).parent)
            fig.suptitle(str(stage), fontsize=9)
            fig.tight_layout()
            png = out / f"curves_{str(stage).replace('/', '_')}.png"
            fig.savefig(png, dpi=100)
            plt.close(fig)
            pngs.append(png)
    return pngs


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _fmt(f: dict[str, Any]) -> str:
    ci = "" if f["lo"] != f["lo"] else f" [{f['lo']:.3f}, {f['hi']:.3f}]"
    vs = f.get("vs")
    paired = "" if not vs else (f"<br><small>{vs['difference']:+.3f} vs {html.escape(vs['model'])} "
                                f"[{vs['lo']:+.3f}, {vs['hi']:+.3f}] paired</small>")
    return f"{f['value']:.3f}{ci} <small>n={f['n']}</small>{paired}"


def side_by_side(results: list[dict[str, Any]], per_suite: int = 3) -> list[dict[str, Any]]:
    """The first ``per_suite`` prompts of each generated suite with every model's answer (rows joined on the
    prompt's suite and id, so models answer the very same prompts)."""
    first = results[0].get("samples", [])
    rows, seen = [], {}
    for r in first:
        if seen.get(r["suite"], 0) >= per_suite:
            continue
        seen[r["suite"]] = seen.get(r["suite"], 0) + 1
        key = (r["suite"], r["id"])
        answers = {}
        for res in results:
            match = next((s for s in res.get("samples", []) if (s["suite"], s["id"]) == key), None)
            answers[res["name"]] = match["completion"] if match else ""
        rows.append({"suite": r["suite"], "prompt": r["prompt"], "answers": answers})
    return rows


def write_report(out: Path, results: list[dict[str, Any]], run_dirs: list[Path] | None = None,
                 notes: dict[str, Any] | None = None) -> Path:
    """``results.json``, the plots and ``report.html`` in ``out``; returns the report's path. ``notes``: what
    the figures rest on (e.g. the toxicity classifier's held-out report), kept in both."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps({"models": results, **(notes or {})}, indent=1) + "\n")
    bars = hhh_plot(results, out / "hhh.png")
    curves = curve_plots(run_dirs or [], out)
    names = [r["name"] for r in results]
    figure_names = []
    for r in results:
        figure_names += [(f["group"], f["name"]) for f in r["figures"] if (f["group"], f["name"]) not in figure_names]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for group, name in sorted(figure_names, key=lambda g: GROUPS.index(g[0])):
        cells = []
        for r in results:
            f = next((f for f in r["figures"] if f["name"] == name), None)
            cells.append(f"<td>{_fmt(f) if f else '—'}</td>")
        body.append(f"<tr><td>{group}</td><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    parts = ["<!doctype html><meta charset='utf-8'><title>lmforge eval</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{border:1px solid #ccc;"
             "padding:4px;vertical-align:top}table{border-collapse:collapse}img{max-width:100%}</style>",
             "<h1>Helpful / honest / harmless</h1>",
             "<p>Each figure: value [95 % interval] and its sample count; ↓ = lower is better. Under it, where "
             "the items are the same: its difference from the reference model with the 95 % interval of the "
             "per-item differences (paired).</p>",
             f"<table><tr><th>group</th><th>figure</th>{head}</tr>{''.join(body)}</table>"]
    if bars:
        parts.append(_img(bars))
    for key, value in (notes or {}).items():
        parts.append(f"<h3>{html.escape(key)}</h3><pre>{html.escape(json.dumps(value, indent=1))}</pre>")
    if curves:
        parts.append("<h2>Training curves</h2>" + "".join(_img(p) for p in curves))
    rows = side_by_side(results)
    if rows:
        parts.append(f"<h2>Answers side by side</h2><table><tr><th>suite</th><th>prompt</th>{head}</tr>")
        for row in rows:
            cells = "".join(f"<td>{html.escape(row['answers'][n])}</td>" for n in names)
            parts.append(f"<tr><td>{row['suite']}</td><td>{html.escape(row['prompt'])}</td>{cells}</tr>")
        parts.append("</table>")
    report = out / "report.html"
    atomic_write_text(report, "\n".join(parts) + "\n")
    return report
