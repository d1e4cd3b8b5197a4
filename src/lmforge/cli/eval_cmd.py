"""``lmforge eval``: helpful / honest / harmless figures of one or several models, side by side, with a report."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import print_summary

EVAL_HELP = "\n\n".join([
    "Score one or several models (MODEL: a Hugging Face folder, .gguf file, hub id or adapter folder; "
    "NAME=MODEL to name it in the report) on the same prompts, and write OUT/results.json, OUT/hhh.png and "
    "OUT/report.html (figures with 95 % intervals and sample counts, training curves of --runs, answers side by "
    "side).",
    "Suites (--suite, repeatable or comma-separated): world (the built-in world's held-out facts, dialogues, "
    "false premises, harmful categories and their benign lookalikes: for models trained on that world), "
    "truthfulqa (MC1/MC2 as lm-evaluation-harness defines them; --truthfulqa FILE), advbench (refusal rate on a "
    "seeded sample of AdvBench's harmful_behaviors.csv, --advbench FILE), toxicity (greedy "
    "continuations of held-out RealToxicityPrompts prompts, --rtp FILE or folder, scored by a classifier trained "
    "once from the file's own scores and cached in OUT/toxicity_classifier), bpb (bits per byte of --text FILE), "
    "harmful (refusal_rate_NAME of each --harmful NAME=FILE prompt file), benign (over_refusal_NAME, distinct2_NAME "
    "and mean_words_NAME of each --benign NAME=FILE); "
    "hhh = world, plus truthfulqa, advbench, toxicity, bpb, harmful and benign when their files are given.",
])


def _models(specs: list[str]) -> list[tuple[str, str]]:
    out, names = [], set()
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        name = name or Path(path.rstrip("/")).name or path
        if name in names:
            name = f"{name}-{len(out)}"
        names.add(name)
        out.append((name, path))
    return out


def _prompt_files(specs: list[str], option: str) -> dict[str, Path]:
    """NAME=FILE (or FILE, named by its stem) -> {NAME: FILE}; names are letters, digits, _ and -."""
    import re

    from ..errors import InputError

    out: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise InputError(f"{option} {spec!r}: the name must be letters, digits, _ or -", field=option.lstrip("-"))
        if name in out:
            raise InputError(f"{option} name {name!r} is given twice", field=option.lstrip("-"))
        if not Path(path).exists():
            raise InputError("prompt file not found", file=path, field=option.lstrip("-"))
        out[name] = Path(path)
    return out


def register(app: typer.Typer) -> None:
    @app.command("eval", help=EVAL_HELP)
    def eval_cmd(models: list[str] = typer.Argument(..., help="MODEL or NAME=MODEL, one or more"),
                 suite: list[str] = typer.Option(["hhh"], "--suite", help="world, truthfulqa, bpb or hhh"),
                 out: Path = typer.Option(Path("runs/eval"), "--out", help="folder for results and report"),
                 truthfulqa: Path | None = typer.Option(None, "--truthfulqa", help="TruthfulQA mc_task.json "
                                                        "(or HF multiple_choice rows as JSON lines)"),
                 advbench: Path | None = typer.Option(None, "--advbench", help="AdvBench harmful_behaviors.csv "
                                                      "for the advbench suite"),
                 rtp: Path | None = typer.Option(None, "--rtp", help="RealToxicityPrompts JSON lines "
                                                 "(file or folder) for the toxicity suite"),
                 encoder: str | None = typer.Option(None, "--encoder", help="toxicity: sentence encoder "
                                                    "\\[default: MiniLM-L6 when installed]"),
                 harmful: list[str] = typer.Option([], "--harmful", help="NAME=FILE: a harmful prompt file "
                                                   "(refusing is right; repeatable)"),
                 benign: list[str] = typer.Option([], "--benign", help="NAME=FILE: a benign prompt file "
                                                  "(refusing is over-refusal; repeatable)"),
                 versus_suite: list[str] = typer.Option([], "--versus-suite", help="compute --reference win "
                                                        "rates on these sample suites only, e.g. benign:NAME"),
                 max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="answer length of the "
                                                    "advbench, harmful and benign suites"),
                 text: Path | None = typer.Option(None, "--text", help="held-out text for bpb: JSON lines "
                                                  "with 'text', or one document per line"),
                 reference: str | None = typer.Option(None, "--reference", help="the NAME of one of the "
                                                      "models: every other model's win rate against it"),
                 judge: str = typer.Option("world", "--judge", help="who judges --reference: world (the "
                                           "built-in world's noise-free labeler) or a reward-model folder"),
                 runs: list[Path] = typer.Option([], "--runs", help="run folders whose training curves to plot"),
                 limit: int | None = typer.Option(None, "--limit", min=1, help="at most N items per suite"),
                 truthfulqa_limit: int | None = typer.Option(None, "--truthfulqa-limit", min=1, help="at most N "
                                                             "TruthfulQA questions \\[default: --limit]"),
                 n_per_suite: int = typer.Option(64, "--n-per-suite", min=1, help="world: prompts per suite"),
                 world_seed: int = typer.Option(0, "--world-seed", help="world: the world's seed"),
                 batch_size: int = typer.Option(16, "--batch-size", min=1),
                 dtype: str = typer.Option("float32", help="float32, bfloat16 or float16"),
                 ) -> None:
        from rich.progress import Progress

        from ..errors import InputError
        from ..eval.hhh import SUITES, run_suites
        from ..eval.report import write_report
        from ..models.peft import load_any

        names = [s.strip() for item in suite for s in item.split(",") if s.strip()]
        if "hhh" in names:
            names = (["world"] + (["truthfulqa"] if truthfulqa else []) + (["advbench"] if advbench else [])
                     + (["toxicity"] if rtp else [])
                     + (["bpb"] if text else []) + (["harmful"] if harmful else [])
                     + (["benign"] if benign else []))
        unknown = [s for s in names if s not in SUITES]
        if unknown:
            raise InputError(f"unknown suite {unknown[0]!r} (use {', '.join(SUITES)} or hhh)", field="suite")
        if "truthfulqa" in names and truthfulqa is None:
            raise InputError("suite truthfulqa needs --truthfulqa FILE", field="truthfulqa")
        if "advbench" in names and advbench is None:
            raise InputError("suite advbench needs --advbench FILE", field="advbench")
        if "toxicity" in names and rtp is None:
            raise InputError("suite toxicity needs --rtp FILE", field="rtp")
        harmful_files, benign_files = _prompt_files(harmful, "--harmful"), _prompt_files(benign, "--benign")
        if "harmful" in names and not harmful_files:
            raise InputError("suite harmful needs --harmful NAME=FILE", field="harmful")
        if "benign" in names and not benign_files:
            raise InputError("suite benign needs --benign NAME=FILE", field="benign")
        if "bpb" in names and text is None:
            raise InputError("suite bpb needs --text FILE", field="text")
        for r in runs:
            if not r.is_dir():
                raise InputError("run folder not found", file=r)
        named = [n for n, _ in _models(models)]
        if reference is not None and reference not in named:
            raise InputError(f"--reference {reference!r} is not one of the models ({', '.join(named)})",
                             field="reference")
        if reference is not None and judge == "world" and "world" not in names:
            raise InputError("--judge world compares answers to the world suite's prompts: add --suite world or "
                             "give a reward-model folder", field="judge")
        if judge != "world" and not Path(judge).is_dir():
            raise InputError("reward-model folder not found", file=judge, field="judge")
        results, notes = [], {}
        with Progress(transient=True) as bar:
            task = bar.add_task("eval", total=len(models) * len(names))
            for name, path in _models(models):
                model, tokenizer = load_any(path, dtype)
                model.eval()

                def on_suite(s, name=name):
                    bar.update(task, description=f"{name}: {s}")
                    bar.advance(task, 0 if s == names[0] else 1)

                figures, samples, found = run_suites(
                    model, tokenizer, names, world_seed=world_seed, n_per_suite=limit or n_per_suite, truthfulqa=truthfulqa,
                    advbench=advbench, rtp=rtp, encoder=encoder, text=text, limit=limit, batch_size=batch_size,
                    cache=out / "toxicity_classifier", on_suite=on_suite, harmful=harmful_files,
                    benign=benign_files, max_new_tokens=max_new_tokens, truthfulqa_limit=truthfulqa_limit)
                bar.advance(task)
                notes.update(found)
                results.append({"name": name, "model": path, "suites": names, "figures": figures,
                                "samples": samples})
                del model
        if len(results) > 1:  # each figure against the reference's (the first model without --reference)
            from ..eval.paired import paired_against

            paired_against(results, reference or results[0]["name"])
        if reference is not None:
            from ..eval.versus import reward_model_scorer, win_rate, world_scorer

            ref = next(r for r in results if r["name"] == reference)
            scorer = (world_scorer(world_seed, limit or n_per_suite) if judge == "world"
                      else reward_model_scorer(judge, batch_size))
            def kept(samples):
                return [s for s in samples if not versus_suite or s["suite"] in versus_suite]

            for r in results:
                if r is not ref:
                    fig = win_rate(kept(r["samples"]), kept(ref["samples"]), scorer, reference)
                    if fig is not None:
                        r["figures"].append(fig.as_dict())
        report = write_report(out, results, runs, notes=notes or None)
        summary = {"report": str(report), "results": str(out / "results.json"),
                   "models": {r["name"]: {f["name"]: round(f["value"], 4) for f in r["figures"]} for r in results}}
        print_summary("eval", json.loads(json.dumps(summary)))
