"""A recipe's one-file outcome from ``lmforge eval``'s ``results.json``: named figures of the chosen model beside
the base model's, which candidate was chosen and why, and what each command cost (``lmforge summarize``).

The choice is a rule a reader can check: each candidate counts the targets it meets (``KEY>=VALUE`` ...), the
most wins, and a tie goes to the higher ``pick`` figure (``-KEY``: the lower), then to the earlier candidate.
"""
from __future__ import annotations

import json
import math
import operator
import re
from pathlib import Path
from typing import Any

from ..errors import InputError

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*(-?[0-9.eE+-]+)\s*$")


def parse_pairs(specs: list[str], option: str) -> dict[str, str]:
    """``KEY=FIGURE`` specs -> {KEY: FIGURE}."""
    out = {}
    for spec in specs:
        key, sep, fig = spec.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", key) or not fig.strip():
            raise InputError(f"{option} {spec!r}: expected KEY=FIGURE (KEY of letters, digits, _)",
                             field=option.lstrip("-"))
        out[key] = fig.strip()
    return out


def parse_targets(specs: list[str]) -> list[tuple[str, str, float]]:
    out = []
    for spec in specs:
        m = TARGET.match(spec)
        if not m:
            raise InputError(f"--target {spec!r}: expected KEY>=NUMBER (or <=, >, <)", field="target")
        try:
            out.append((m[1], m[2], float(m[3])))
        except ValueError:
            raise InputError(f"--target {spec!r}: {m[3]!r} is not a number", field="target") from None
    return out


def load_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """{model name: {"model": source, "figures": {figure name: figure dict}}} of an eval's results.json."""
    path = Path(path)
    if not path.is_file():
        raise InputError("results file not found", file=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        models = {r["name"]: {"model": r["model"], "figures": {f["name"]: f for f in r["figures"]}}
                  for r in data["models"]}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"not an 'lmforge eval' results.json ({type(e).__name__}: {e})", file=path) from None
    return models


def read_timings(path: str | Path) -> list[dict[str, Any]]:
    """The JSON lines ``LMFORGE_TIMINGS`` collected (one per command)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("timings file not found", file=path)
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append({"command": str(row["command"]), "argv": row.get("argv", []),
                         "seconds": float(row["seconds"]), "peak_rss_gb": float(row["peak_rss_gb"]),
                         "exit": row.get("exit", 0)})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise InputError("expected a JSON line with command, seconds, peak_rss_gb", file=path, line=i) from None
    return rows


PAIRED = ".vs"  # FIGURE.vs: the figure's paired difference from the base model's (lmforge.eval.paired)


def _figure(models: dict[str, dict[str, Any]], name: str, figure: str, base: str) -> dict[str, Any] | None:
    """The figure dict a key reads: ``FIGURE``, or for ``FIGURE.vs`` its paired difference from the base's
    (``{value, lo, hi, n}``; none when the eval paired it with another model)."""
    if not figure.endswith(PAIRED):
        return models[name]["figures"].get(figure)
    fig = models[name]["figures"].get(figure[:-len(PAIRED)])
    vs = (fig or {}).get("vs")
    if name == base and fig is not None:
        return {"value": 0.0, "lo": 0.0, "hi": 0.0, "n": fig["n"]}
    if not vs or vs["model"] != base:
        return None
    return {"value": vs["difference"], "lo": vs["lo"], "hi": vs["hi"], "n": vs["n"]}


def value(models: dict[str, dict[str, Any]], name: str, figure: str, base: str) -> float | None:
    """A figure's value for one model; a win rate against the base is 0.5 for the base itself by definition,
    and a paired difference from it (``FIGURE.vs``) 0."""
    fig = _figure(models, name, figure, base)
    if fig is not None:
        v = fig["value"]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    if name == base and figure == f"win_rate_vs_{base}":
        return 0.5
    return None


def choose(models, candidates: list[str], keys: dict[str, str], targets, pick: str | None, base: str
           ) -> tuple[str, dict[str, Any]]:
    """The chosen candidate and, per candidate, its targets met."""
    scores, detail = [], {}
    for order, name in enumerate(candidates):
        met = {}
        for key, op, bound in targets:
            v = value(models, name, keys.get(key, key), base)
            met[f"{key}{op}{bound:g}"] = v is not None and OPS[op](v, bound)
        tie = 0.0
        if pick:
            key = pick.lstrip("-")
            v = value(models, name, keys.get(key, key), base)
            tie = -math.inf if v is None else (-v if pick.startswith("-") else v)
        detail[name] = {"targets_met": sum(met.values()), "targets": met}
        scores.append((sum(met.values()), tie, -order, name))
    return max(scores)[3], detail


def summarize(results: str | Path, *, base: str, candidates: list[str], keys: dict[str, str],
              targets: list[tuple[str, str, float]], pick: str | None = None,
              timings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The summary (see the module docstring); ``keys`` name figures (``KEY=FIGURE``) under the keys wanted."""
    models = load_results(results)
    for name in [base, *candidates]:
        if name not in models:
            raise InputError(f"model {name!r} is not in the results (have {', '.join(models)})", file=results)
    if not candidates:
        raise InputError("give at least one --candidate", field="candidate")
    for key, figure in keys.items():
        if not any(figure.removesuffix(PAIRED) in m["figures"] for m in models.values()):
            raise InputError(f"--key {key}={figure}: no model has the figure {figure!r}", file=results, field="key")
    for key, _, _ in targets:
        if key not in keys and not any(key in m["figures"] for m in models.values()):
            raise InputError(f"--target {key}: neither a --key nor a figure of the results", field="target")
    chosen, detail = choose(models, candidates, keys, targets, pick, base)
    out: dict[str, Any] = {}
    for key, figure in keys.items():
        out[key] = value(models, chosen, figure, base)
        out[f"{key}_base"] = value(models, base, figure, base)
    out["final_model"] = {"name": chosen, "source": models[chosen]["model"], "rule":
                          "most targets met, then " + (f"{'lowest' if pick.startswith('-') else 'highest'} "
                                                       f"{pick.lstrip('-')}" if pick else "the order given"),
                          "candidates": detail}
    out["models"] = {name: {key: value(models, name, figure, base) for key, figure in keys.items()}
                     for name in models}
    out["intervals"] = {name: {key: ([f["lo"], f["hi"], f["n"]] if (f := _figure(models, name, figure, base))
                                     else None) for key, figure in keys.items()} for name in models}
    if timings is not None:
        out["stages"] = [{k: t[k] for k in ("command", "seconds", "peak_rss_gb", "exit")} | {"argv": t["argv"]}
                         for t in timings]
        out["seconds_total"] = round(sum(t["seconds"] for t in timings), 2)
        out["peak_rss_gb"] = max((t["peak_rss_gb"] for t in timings), default=None)
    return out
