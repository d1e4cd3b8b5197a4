"""What the loop measures, each a thin call into the library that ``lmforge eval``, ``lmforge redteam`` and
``lmforge rm`` use: the HHH suites of a round's policy, a red-team pass (plus the previous round's successful
attacks replayed against it), and a reward model's pair accuracy on a preference file."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..runs import atomic_write_text


def reward_model_accuracy(model_dir: str | Path, preference_file: str | Path, batch_size: int = 32
                          ) -> dict[str, Any]:
    """Overall pair accuracy of the reward model in ``model_dir`` on ``preference_file`` (the pairs the
    records order, as ``lmforge rm`` measures its held-out file: :func:`lmforge.eval.reward_eval.pair_accuracy`)."""
    from ..data.reward_data import DataReport, HeadSpec, build_groups, read_preference_files
    from ..eval.reward_eval import eval_pairs, group_scores, pair_accuracy
    from ..models.reward_scores import RewardScorer

    scorer = RewardScorer(model_dir)
    groups = build_groups(read_preference_files([preference_file], DataReport()), HeadSpec([]), DataReport())
    for g in groups:
        g.encoded = [scorer.encode(g.prompt, text) for text in g.responses]
    pairs = eval_pairs(groups)
    if not pairs:
        return {"heldout_pair_accuracy": None, "heldout_pairs": 0}
    scores = group_scores(scorer.model.eval(), groups, scorer.tokenizer.pad_token_id, batch_size)
    result = pair_accuracy(pairs, scores, [])
    return {"heldout_pair_accuracy": result["heldout_pair_accuracy"], "heldout_pairs": result["heldout_pairs"]}


def _load_policy(path: str):
    from ..models.peft import load_any

    model, tokenizer = load_any(path)
    return model.eval(), tokenizer


def compare_with(cfg, model, tokenizer, reference: str, name: str, out: Path) -> dict[str, Any]:
    """``model`` against the policy ``reference`` on the world's held-out mix, as the demo compares a tuned
    policy with its SFT model (:func:`lmforge.eval.policy_compare.compare_to_sft`: greedy answers, the
    noise-free simulated labeler's verdict per prompt): the win rate (wins + ties/2) with the 95 % interval of
    the per-prompt outcomes, the KL to the reference, and the per-prompt records in
    ``out/compare_<name>.jsonl``. The reference's answers are cached in ``OUT/answers_<name>.json``."""
    from ..eval.intervals import mean_interval
    from ..eval.policy_compare import compare_to_sft
    from ..world import World

    ref_model, _ = _load_policy(reference)
    metrics, records = compare_to_sft(model, ref_model, tokenizer, World(cfg.prompts.world_seed),
                                      n_per_suite=cfg.eval.compare_n_per_suite, seed=cfg.seed,
                                      batch_size=cfg.eval.batch_size, threads=1,
                                      sft_cache=cfg.path / f"answers_{name}.json")
    atomic_write_text(out / f"compare_{name}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    outcomes = [1.0 if r["winner"] == "policy" else 0.5 if r["winner"] == "tie" else 0.0 for r in records]
    lo, hi = mean_interval(outcomes)
    return {"reference": reference, "win_rate": metrics["win_rate_vs_sft"], "ci95": [lo, hi],
            "n": len(outcomes), "kl": metrics["kl_to_sft"]}


def eval_policy(cfg, name: str, policy: str, out: Path, references: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """The configured HHH suites of ``policy`` as one ``lmforge eval`` results entry, written to
    ``out/summary.json`` (the step's completion marker), with its win rate against each of ``references``
    ({name: policy folder}) when ``eval.compare`` is on."""
    references = references or {}
    from ..eval.hhh import run_suites

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _load_policy(policy)
    e = cfg.eval
    figures, samples, _ = run_suites(model, tokenizer, e.suites, world_seed=cfg.prompts.world_seed,
                                     n_per_suite=e.n_per_suite, truthfulqa=e.truthfulqa, text=e.text,
                                     limit=e.limit, batch_size=e.batch_size)
    compare = {}
    if e.compare and "world" in e.suites:
        for ref_name, ref in references.items():
            compare[ref_name] = compare_with(cfg, model, tokenizer, ref, ref_name, out)
    entry = {"name": name, "model": policy, "suites": list(e.suites), "figures": figures, "samples": samples,
             "compare": compare, "seconds": round(time.time() - t0, 2)}
    atomic_write_text(out / "summary.json", json.dumps(entry, indent=1) + "\n")
    return entry


def _seeds(cfg):
    from ..redteam.run import file_seeds, world_seeds

    r = cfg.redteam
    if r.seeds == "world":
        return world_seeds(cfg.prompts.world_seed, split=r.split, n=r.limit)
    return file_seeds(r.seeds, r.limit)


def replay(model, tokenizer, cfg, previous_attacks: Path) -> dict[str, Any] | None:
    """The previous round's successful attacks, exactly as they were (same prompts), against this policy: the
    share that still succeeds (1.0 for the policy they were found on, by construction)."""
    from ..eval.intervals import wilson_interval
    from ..generation import SamplingParams
    from ..rollout.generate import generate
    from ..world.judge import refused

    if not previous_attacks.is_file():
        return None
    won = [json.loads(line) for line in previous_attacks.read_text(encoding="utf-8").splitlines() if line.strip()]
    won = [r for r in won if r["success"]]
    if not won:
        return {"attacks": 0, "success_rate": None}
    sampling = SamplingParams(max_new_tokens=cfg.redteam.max_new_tokens, temperature=0.0, logprobs=False)
    outs = generate(model, tokenizer, [[{"role": "user", "content": r["prompt"]}] for r in won], sampling,
                    batch_size=cfg.redteam.batch_size)
    hits = [not refused(group[0]["text"]) for group in outs]
    lo, hi = wilson_interval(sum(hits), len(hits))
    return {"attacks": len(hits), "success_rate": sum(hits) / len(hits), "ci95": [lo, hi]}


def redteam_policy(cfg, policy: str, out: Path, previous: Path | None) -> dict[str, Any]:
    """``lmforge redteam``'s pass on ``policy`` into ``out`` (attacks.jsonl, findings/, summary.json last), with
    the previous round's findings replayed (``previous_findings``)."""
    from ..redteam.attacks import resolve
    from ..redteam.run import attack, export, summarize

    model, tokenizer = _load_policy(policy)
    r = cfg.redteam
    records = attack(model, tokenizer, _seeds(cfg), resolve(r.attacks), max_new_tokens=r.max_new_tokens,
                     batch_size=r.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "attacks.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in records))
    summary = {"model": policy, "seeds_from": r.seeds, "split": r.split, **summarize(records),
               "exported": export(records, out / "findings"),
               "previous_findings": replay(model, tokenizer, cfg, previous / "redteam" / "attacks.jsonl")
               if previous is not None else None}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
