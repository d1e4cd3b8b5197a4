"""``lmforge demo --loop 2``'s wiring on the tiny model: the demo's recipe (its labelers, reward-model loss, PPO
settings) shrunk by the loop tests' sizes, two rounds from a demo folder's sft/ and reward_model/, and the
figures in the demo's summary.json under loop.round_N next to the stages it already had."""
from __future__ import annotations

import json
import shutil

import pytest

from lmforge.errors import InputError

from .conftest import TINY


@pytest.fixture
def demo_dir(tmp_path, world_lm):
    """A demo folder whose stages finished: sft/final and reward_model/final (here the tiny model, a bare backbone
    for the reward model) and a summary.json with the stages' numbers."""
    out = tmp_path / "demo"
    for stage in ("sft", "reward_model"):
        shutil.copytree(world_lm, out / stage / "final")
    (out / "summary.json").write_text(json.dumps({"stages": {"sft": {"heldout_fact_accuracy": 0.5}},
                                                  "seconds_total": 1.0, "seed": 0}))
    return out


def _tiny(monkeypatch):
    import lmforge.stages.demo_loop as demo_loop

    real = demo_loop.demo_loop_config
    # k 4: the recipe's k_start 2 needs two responses a prompt from each policy
    monkeypatch.setattr(demo_loop, "demo_loop_config", lambda out, rounds, seed, over=None:
                        real(out, rounds, seed, {**TINY, "k": 4}))


@pytest.mark.slow
def test_demo_loop_runs_two_rounds_and_writes_loop_round_n(demo_dir, monkeypatch):
    import yaml

    from lmforge.stages.demo import demo

    _tiny(monkeypatch)
    summary = demo(demo_dir, only=["loop"], loop=2)
    assert summary["stages"]["sft"] == {"heldout_fact_accuracy": 0.5}  # the stages' numbers are kept
    assert summary["seconds_total"] == 1.0  # and their total: the loop's own seconds are in stages.loop
    assert json.loads((demo_dir / "summary.json").read_text()) == summary
    r1, r2 = summary["loop"]["round_1"], summary["loop"]["round_2"]
    assert set(summary["loop"]) == {"round_1", "round_2"}
    assert "win_rate_vs_round_1" not in r1
    lo, hi = r2["win_rate_vs_round_1_ci95"]
    assert 0 <= lo <= r2["win_rate_vs_round_1"] <= hi <= 1
    for r in (r1, r2):
        assert 0 <= r["attack_success_rate"] <= 1 and r["seconds"] > 0
        assert 0 <= r["reward_model_accuracy_newest"] <= 1
        assert {"refusal_rate_heldout", "over_refusal_rate"} <= set(r["hhh"])
    assert r2["previous_findings_success_rate"] is not None  # round 1's successful attacks, replayed
    head = summary["stages"]["loop"]
    assert head["rounds"] == 2 and head["round_2_win_rate_vs_round_1"] == r2["win_rate_vs_round_1"]
    assert head["report"] == str(demo_dir / "loop/report/report.html")

    # the demo's recipe, under the tests' sizes: its labelers, its reward model and SFT model, its PPO settings
    cfg = yaml.safe_load((demo_dir / "loop/config.yaml").read_text())
    assert cfg["policy"] == str(demo_dir / "sft/final")
    assert cfg["update"]["reward_model"] == str(demo_dir / "reward_model/final")
    assert cfg["feedback"]["sources"] == [{"kind": "simulated", "labelers": 3, "noise": 0.5, "seed": 0}]
    assert cfg["update"]["rl"]["model"]["freeze_embeddings"] == "except_special"
    assert cfg["update"]["rl"]["rl"]["kl_coef"] == 0.05 and cfg["update"]["reward_term"] == {"clip": 5.0}
    assert cfg["prompts"]["kinds"] == ["harmful", "over_refusal", "false_premise"] and cfg["k_start"] == 2
    batch = [json.loads(line) for line in (demo_dir / "loop/round-002/generate/batch.jsonl").read_text().splitlines()]
    assert all(sum(r["model"] == str(demo_dir / "sft/final") for r in it["responses"]) == 2 for it in batch)
    rm_model = cfg["update"]["rm"]["model"]  # the demo reward model's head trains on as it was
    assert rm_model["head"] == "generative" and rm_model["likelihood_weight"] == 1.0
    summary_rm = json.loads((demo_dir / "loop/round-002/rm/summary.json").read_text())
    assert summary_rm["head"] == "generative"
    # the same attacks against each round's policy
    attacks = [[(a["seed"], a["attack"]) for a in map(json.loads, (demo_dir / f"loop/round-00{n}/redteam/"
                                                                   "attacks.jsonl").read_text().splitlines())]
               for n in (1, 2)]
    assert attacks[0] == attacks[1] and len(attacks[0]) == 4

    # again: nothing is redone, the rounds keep the seconds they took
    again = demo(demo_dir, only=["loop"], loop=2)
    assert again["loop"]["round_2"]["seconds"] == r2["seconds"]
    assert again["loop"]["round_2"]["win_rate_vs_round_1"] == r2["win_rate_vs_round_1"]


def test_demo_loop_needs_the_demos_models(tmp_path, capsys):
    from lmforge.cli.main import main
    from lmforge.stages.demo_loop import demo_loop_config

    with pytest.raises(InputError, match=r"demo's sft model, and .*sft/final is missing"):
        demo_loop_config(tmp_path, 2, 0)
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path), "--stages", "loop"])
    assert exc.value.code == 2 and "stage 'loop' needs --loop N" in capsys.readouterr().err


def test_a_copied_demo_folders_summary_names_its_own_files(tmp_path):
    """`cp -r demo demo2; lmforge demo --out demo2 --stages loop --loop 2` must print demo2's report, not demo's."""
    from lmforge.stages.demo import _moved

    old, new = tmp_path / "demo", tmp_path / "demo2"
    written = {"stages": {"report": {"report": f"{old}/report/report.html", "seconds": 1.0},
                          "pretrain": {"samples": f"{old}/pretrain/samples.jsonl", "val_loss": 1.2},
                          "ppo": {"note": f"{old}x/elsewhere"}}, "seed": 0}  # a sibling folder is not ours
    moved = _moved(written, new)
    assert moved["stages"]["report"]["report"] == f"{new}/report/report.html"
    assert moved["stages"]["pretrain"] == {"samples": f"{new}/pretrain/samples.jsonl", "val_loss": 1.2}
    assert moved["stages"]["ppo"] == {"note": f"{old}x/elsewhere"}
    # a summary that records its folder is rebased from it; one read back in place is unchanged
    assert _moved({**written, "out": str(old)}, new)["stages"]["report"]["report"] == f"{new}/report/report.html"
    assert _moved({**written, "out": str(old)}, old) == {**written, "out": str(old)}
