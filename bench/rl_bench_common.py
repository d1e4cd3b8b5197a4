"""What the GRPO / RLOO benchmark sides share: the settings, the reward (written once, adapted to each side's
interface) and the result fields. Imports neither lmforge nor TRL, so both sides load it.

Settings (``../shared/bench`` BASELINE.md's grpo / rloo rows): the tiny Llama of make_tiny.py, the prompt rows of
``data.prompt_dataset`` (conversational; ``target`` = the reference answer), 4 prompts x 4 completions per
optimizer step (batch 16 completions, one generation per step, one forward of 16), 128 new tokens sampled at
T = 1 (top_p 1, top_k 0), lr 1e-6 with linear decay to 0, AdamW (0.9, 0.999), clip 1.0, fp32, no gradient
checkpointing. GRPO: no KL term (TRL's beta 0), token-level loss (TRL's dapo = lmforge's token-mean), group
std scaling. RLOO: beta 0.05 k1 KL in the reward against a frozen copy of the start model, leave-one-out
baseline, a mean over sequences.

Reward: ``data.word_overlap_reward`` of the shared harness (multiset F1 of words + 0.5 x positional match
against ``target``, in [0, 1.5]); :func:`trl_reward` and :func:`lmforge_reward` are its two adapters.

Result fields (one JSON line per run, both sides): ``completion_tokens`` (response tokens the training forward
scored: TRL's completion_mask, lmforge's response mask, EOS / end-of-turn included), ``seconds`` (the training
loop, generation included), ``tokens_per_s`` = completion_tokens / seconds, and per optimizer step
``step_s`` split into ``generation_s`` (sampling), ``scoring_s`` (reward function + the no-grad log-prob
forwards: old policy, reference) and ``training_s`` (the rest: the training forward, backward, optimizer);
``reward_s`` is the reward function's share of scoring_s. ``peak_rss_mb`` is the process's ru_maxrss.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SETTINGS = {"prompts_per_step": 4, "group": 4, "max_new_tokens": 128, "temperature": 1.0, "lr": 1e-6,
            "beta": {"grpo": 0.0, "rloo": 0.05}}


def shared_data(shared: str):
    """The shared harness's data module (prompt rows and the reward)."""
    if shared not in sys.path:
        sys.path.insert(0, shared)
    import data

    return data


def trl_reward(shared: str):
    """TRL's reward interface: ``f(prompts, completions, target=..., **kwargs) -> list[float]``."""
    fn = shared_data(shared).word_overlap_reward

    def word_overlap(prompts, completions, target=None, **kwargs):
        return fn(prompts, completions, target=target)

    word_overlap.__name__ = "word_overlap"
    return word_overlap


def lmforge_reward(prompts, responses, meta, shared: str = "", **kwargs) -> list[float]:
    """lmforge's reward-function interface (``reward.terms[].function: bench/rl_bench_common.py:lmforge_reward``):
    the target comes from each prompt's ``meta``, the response is plain text."""
    fn = shared_data(shared).word_overlap_reward
    return fn(prompts, responses, target=[(m or {}).get("target", "") for m in meta])


def dump_prompts(shared: str, out: Path) -> Path:
    """The shared prompt rows as lmforge's prompt JSONL (``{"prompt": messages, "meta": {"target"}}``), in the
    shared harness's row order."""
    if not out.exists():
        rows = shared_data(shared).prompt_dataset(fmt="conversational")
        tmp = out.with_suffix(".tmp")
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps({"prompt": r["prompt"], "meta": {"target": r["target"]}}) + "\n")
        tmp.replace(out)
    return out


def per_step(row: dict, steps: int, gen: float, scoring: float, reward: float) -> dict:
    """The seconds split per optimizer step (training = the loop's rest) and the throughput."""
    secs = row["seconds"]
    row.update(step_s=round(secs / steps, 4), generation_s=round(gen / steps, 4),
               scoring_s=round(scoring / steps, 4), reward_s=round(reward / steps, 4),
               training_s=round((secs - gen - scoring) / steps, 4),
               tokens_per_s=round(row["completion_tokens"] / secs, 1))
    return row


def compare_rl(args, work: Path, trl_py: str, model: Path, sh) -> None:
    """``bench/compare.py grpo|rloo``: rounds alternating TRL and lmforge (fresh processes), rows appended to
    bench/results/<task>.jsonl, then the table of medians (ratio = completion tokens/s over TRL's) and the
    per-round ratios (each lmforge run over the TRL run of its own round: the machine's load moves between
    rounds more than within one). ``--baseline-src DIR``: a third side, ``lmforge_base``, runs the same
    lmforge script on another source tree (e.g. ``git archive <commit> src``), so a before / after pair is
    measured in the same rounds as the peer. Every row records the 1-minute load average before it ran."""
    import os
    import statistics

    here = Path(__file__).resolve().parent
    prompts = dump_prompts(args.shared, work / "rl_prompts.jsonl")
    common = [args.task, "--model", str(model), "--shared", str(args.shared), "--steps", str(args.steps),
              "--max-new-tokens", str(args.max_new_tokens)]
    ours = [sys.executable, str(here / "rl_bench_lmforge.py"), *common, "--prompts", str(prompts)]
    runs = {"trl": ([trl_py, str(here / "rl_bench_trl.py"), *common], None), "lmforge": (ours, None)}
    base = getattr(args, "baseline_src", None)
    if base:
        runs["lmforge_base"] = (ours, {"PYTHONPATH": str(Path(base).resolve())})
    results: dict[str, list[dict]] = {k: [] for k in runs}
    out = here / "results" / f"{args.task}.jsonl"
    out.parent.mkdir(exist_ok=True)
    for r in range(args.rounds):
        for name, (cmd, env) in runs.items():
            load = round(os.getloadavg()[0], 2)
            row = json.loads(sh(cmd, env).strip().splitlines()[-1])
            row.update(name=name, round=r, load_before=load, src=(env or {}).get("PYTHONPATH"),
                       command=" ".join(Path(c).name if "/" in c else c for c in cmd[1:]))
            results[name].append(row)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)
    med = {k: {f: statistics.median(x[f] for x in v) for f in ("tokens_per_s", "step_s", "generation_s",
                                                               "scoring_s", "reward_s", "training_s")}
           for k, v in results.items()}
    print(f"| {args.task} | completion tokens/s (median of {args.rounds}) | vs TRL | per-round vs TRL (median) | "
          "s/step | generation | scoring (reward fn) | training | peak RSS MB | calib GFLOP/s per round | "
          "load per round |")
    print("|---" * 11 + "|")
    for k, v in results.items():
        m = med[k]
        per = [x["tokens_per_s"] / t["tokens_per_s"] for x, t in zip(v, results["trl"], strict=True)]
        calib = ", ".join(f"{x['calib_gflops']:.0f}" for x in v)
        load = ", ".join(f"{x['load_before']:.1f}" for x in v)
        print(f"| {k} | {m['tokens_per_s']:,.1f} | {m['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}x | "
              f"{' / '.join(f'{x:.2f}' for x in per)} ({statistics.median(per):.2f}x) | "
              f"{m['step_s']:.2f} | {m['generation_s']:.2f} | {m['scoring_s']:.2f} ({m['reward_s']:.3f}) | "
              f"{m['training_s']:.2f} | {max(x['peak_rss_mb'] for x in v):,.0f} | {calib} | {load} |")
