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


def eval_policy(cfg, name: str, policy: str, out: Path) -> dict[str, Any]:
    """The configured HHH suites of ``policy`` as one ``lmforge eval`` results entry, written to
    ``out/summary.json`` (the step's completion marker)."""
    from ..eval.hhh import SUITES

    t0 = time.time()
    model, tokenizer = _load_policy(policy)
    e = cfg.eval
    figures, samples = [], []
    for suite in e.suites:
        if suite == "world":
            figs, recs = SUITES["world"](model, tokenizer, world_seed=cfg.prompts.world_seed,
                                         n_per_suite=e.n_per_suite, batch_size=e.batch_size)
            samples += recs
        elif suite == "truthfulqa":
            figs = SUITES["truthfulqa"](model, tokenizer, e.truthfulqa, limit=e.limit, batch_size=e.batch_size)
        else:
            figs = SUITES["bpb"](model, tokenizer, e.text, limit=e.limit)
        figures += [f.as_dict() for f in figs]
    entry = {"name": name, "model": policy, "suites": list(e.suites), "figures": figures, "samples": samples,
             "seconds": round(time.time() - t0, 2)}
    out.mkdir(parents=True, exist_ok=True)
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
