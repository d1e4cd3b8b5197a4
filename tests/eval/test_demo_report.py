"""The demo's report stage: figures rebuilt from the dpo/ppo stages' answers, with counts, intervals and the
win rate, and the report written beside the curves of every stage."""
from __future__ import annotations

import json
from pathlib import Path

from lmforge.eval.policy_compare import heldout_mix
from lmforge.stages.demo_align import EVAL_PROMPTS
from lmforge.stages.demo_report import stage_report
from lmforge.world import World


def test_report_from_the_stages_answers(tmp_path: Path):
    world = World(0)
    items = [it for s in heldout_mix(world, EVAL_PROMPTS, 0) for it in s.items]
    suite_of = {it["id"]: s.name for s in heldout_mix(world, EVAL_PROMPTS, 0) for it in s.items}
    rows = [{"suite": suite_of[it["id"]], "id": it["id"], "prompt": it["messages"][-1]["content"],
             "policy": it["reference"], "sft": "Blue.", "winner": "policy" if i % 2 else "tie"}
            for i, it in enumerate(items)]
    (tmp_path / "ppo").mkdir()
    (tmp_path / "ppo" / "eval_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "ppo" / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "loss": 1.0}) + "\n")
    out = stage_report(tmp_path, 0, False, {})
    assert out["models"] == ["sft", "ppo"]
    results = {m["name"]: {f["name"]: f for f in m["figures"]}
               for m in json.loads((tmp_path / "report" / "results.json").read_text())["models"]}
    # the reference answers are right on every judged suite; "Blue." on none
    assert results["ppo"]["heldout_fact_accuracy"]["value"] == 1.0
    assert results["ppo"]["refusal_rate_heldout"]["value"] == 1.0
    assert results["sft"]["heldout_fact_accuracy"]["value"] == 0.0
    assert results["ppo"]["heldout_fact_accuracy"]["n"] == EVAL_PROMPTS
    win = results["ppo"]["win_rate_vs_sft"]
    assert win["n"] == len(rows) and abs(win["value"] - 0.75) < 0.01 and win["lo"] < win["value"] < win["hi"]
    assert "win_rate_vs_sft" not in results["sft"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Answers side by side" in html and html.count("<img") == 2


def test_nothing_to_report(tmp_path: Path):
    assert "skipped" in stage_report(tmp_path, 0, False, {})
