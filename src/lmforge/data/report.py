"""Human-readable views of a ``data prepare`` report: ``report.md`` and the summary table the CLI prints."""
from __future__ import annotations

from typing import Any

SNIPPET_CHARS = 160

# What each drop reason means, for readers of report.md who have not read the config.
REASON_HELP = {
    "empty": "nothing left after cleaning",
    "exact_duplicate": "same text as an earlier kept document",
    "near_duplicate": "MinHash Jaccard >= threshold with an earlier kept document",
}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _md_escape(text: str) -> str:
    """One line, safe inside a markdown table cell or blockquote."""
    return " ".join(text.split()).replace("|", "\\|")


def _truncate(text: str, limit: int = SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: totals, a table of stages and drop reasons, then up to N examples per reason."""
    docs, chars = report["documents"], report["chars"]
    read = docs["read"]
    lines = ["# Data preparation report", ""]
    if report.get("output"):
        lines += [f"Output: `{report['output']}`", ""]
    lines += [
        "| | documents | characters |",
        "|---|---:|---:|",
        f"| read | {read:,} | {chars['read']:,} |",
        (f"| kept | {docs['kept']:,} ({_pct(docs['kept'], read)}) | {chars['kept']:,} "
         f"({_pct(chars['kept'], chars['read'])}) |"),
        f"| dropped | {docs['dropped']:,} ({_pct(docs['dropped'], read)}) | |",
        "",
        "## Stages",
        "",
        "| stage | in | dropped | out |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {s['stage']} | {s['in']:,} | {s['dropped']:,} | {s['out']:,} |" for s in report["stages"]]
    lines += ["", "## Drop reasons", "", "| reason | documents | share of read | meaning |",
              "|---|---:|---:|---|"]
    for reason, n in report["dropped"].items():
        if n:
            meaning = REASON_HELP.get(reason, f"config key `filters.{reason}`")
            lines.append(f"| {reason} | {n:,} | {_pct(n, read)} | {meaning} |")
    idle = [reason for reason, n in report["dropped"].items() if not n]
    if idle:
        lines += ["", f"Active checks that dropped nothing: {', '.join(idle)}."]
    if report.get("inputs"):
        lines += ["", "## Inputs", "", "| file | read | kept |", "|---|---:|---:|"]
        lines += [f"| `{i['file']}` | {i['read']:,} | {i['kept']:,} |" for i in report["inputs"]]
    shown = report.get("examples", {})
    examples = {r: shown[r] for r in report["dropped"] if shown.get(r)}  # in pipeline order
    if examples:
        lines += ["", "## Examples", ""]
    for reason, items in examples.items():
        lines += [f"### {reason}", ""]
        for ex in items:
            where = f"`{ex['file']}:{ex['line']}`"
            extra = [f"value {ex['value']}"] if "value" in ex else []
            extra += [f"duplicate of `{ex['duplicate_of']}`"] if "duplicate_of" in ex else []
            lines.append(f"- {where}" + (f" ({', '.join(extra)})" if extra else ""))
            lines.append(f"  > {_md_escape(_truncate(ex['text'])) or '(empty)'}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def summary_table(report: dict[str, Any]):
    """A compact rich table: read/kept, then every drop reason that dropped something."""
    from rich.table import Table

    docs, chars = report["documents"], report["chars"]
    table = Table(title="data prepare", show_edge=False)
    table.add_column("", style="bold")
    table.add_column("documents", justify="right")
    table.add_column("share", justify="right")
    table.add_row("read", f"{docs['read']:,}", "", end_section=False)
    table.add_row("kept", f"{docs['kept']:,}", _pct(docs["kept"], docs["read"]), style="green")
    for reason, n in report["dropped"].items():
        if n:
            table.add_row(f"  dropped: {reason}", f"{n:,}", _pct(n, docs["read"]), style="yellow")
    table.add_row("chars kept", f"{chars['kept']:,}", _pct(chars["kept"], chars["read"]))
    return table
