"""``lmforge loop`` end to end on the built-in world with a tiny model and the simulated labeler: two rounds,
round 2 starting from round 1's policy and reward model, and a crash inside every step resumed with nothing
redone and no label made twice."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lmforge.loop.run import run_loop

from .conftest import loop_cfg


class Crash(RuntimeError):
    pass


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _crash_once_per_round(monkeypatch, calls: Counter, targets: dict[str, tuple[object, str]]):
    """Wrap each target so that its first call of every round raises before doing anything; later calls run
    the real function and are counted (per function). The round is read from the folder the call writes to."""
    crashed: set[tuple[str, str]] = set()

    def wrap(name, real):
        def fn(*args, **kwargs):
            where = " ".join(str(a) for a in args) + " " + " ".join(str(v) for v in kwargs.values())
            rnd = next((f"round-{n:03d}" for n in (2, 1) if f"round-{n:03d}" in where), "?")  # round 2 names
            # round 1's folders too (its inputs), so it is looked for first
            if (name, rnd) not in crashed:
                crashed.add((name, rnd))
                raise Crash(f"killed in {name} of {rnd}")
            calls[name] += 1
            return real(*args, **kwargs)
        return fn

    for name, (module, attr) in targets.items():
        monkeypatch.setattr(module, attr, wrap(name, getattr(module, attr)))


@pytest.mark.slow
def test_two_rounds_killed_in_every_step_resume_without_redoing_or_relabelling(tmp_path, world_lm, monkeypatch):
    import lmforge.loop.feedback as fb
    import lmforge.loop.measure as measure
    import lmforge.loop.run as run
    import lmforge.stages.generate as generate
    import lmforge.stages.rl as rl
    import lmforge.stages.rm as rm
    from lmforge.feedback.store import Store

    cfg = loop_cfg(tmp_path / "loop", world_lm)
    calls: Counter = Counter()
    labelled: Counter = Counter()
    import lmforge.feedback.simulate as sim  # imported inside the step, so patched at its module

    real = sim.simulate

    def counting_simulate(store, batch, **kw):
        out = real(store, batch, **kw)
        labelled[batch] += out["created"]
        return out

    monkeypatch.setattr(sim, "simulate", counting_simulate)
    # export_round runs after the labels are stored: a crash there leaves the round's labels in the database
    # and no feedback/summary.json, so the step is redone and must find its batch and labels as they are
    _crash_once_per_round(monkeypatch, calls, {
        "prompts": (run, "write_round_prompts"), "generate": (generate, "generate_batch"),
        "export": (fb, "export_round"), "rm": (rm, "train_rm"), "rm_check": (measure, "reward_model_accuracy"),
        "ppo": (rl, "rl_train"), "eval": (measure, "eval_policy"), "redteam": (measure, "redteam_policy")})
    # (rm_check scores a previous reward model only in round 2: round 1 starts from a bare backbone)
    summary, attempts = None, 0
    while summary is None:
        attempts += 1
        assert attempts < 30, "the loop does not finish"
        try:
            summary = run_loop(cfg, say=lambda _: None)
        except Crash:
            continue
    # every wrapped function crashed once per round it ran in, then ran exactly once: nothing finished was redone
    assert calls == Counter({"prompts": 2, "generate": 2, "export": 2, "rm": 2, "rm_check": 1, "ppo": 2,
                             "eval": 2, "redteam": 2})
    assert attempts == 1 + sum(calls.values())  # one crash per call that then ran, and the last run
    assert summary["rounds_done"] == 2 and set(summary["loop"]) == {"round_1", "round_2"}

    r1, r2 = (_read(tmp_path / "loop" / f"round-00{n}" / "round.json") for n in (1, 2))
    assert all(r1["steps"].values()) and all(r2["steps"].values())
    # round 2 starts from round 1's policy and reward model, and says so
    assert r1["policy_in"] == str(world_lm)
    assert r2["policy_in"] == r1["policy_out"] == str(tmp_path / "loop/round-001/ppo/final")
    assert r2["reward_model_in"] == r1["reward_model_out"] == str(tmp_path / "loop/round-001/rm/final")
    assert _read(tmp_path / "loop/round-002/ppo/summary.json")["final"] == r2["policy_out"]
    import yaml

    assert yaml.safe_load((tmp_path / "loop/round-002/rm/config.yaml").read_text())["model"]["path"] == \
        r1["reward_model_out"]
    assert yaml.safe_load((tmp_path / "loop/round-002/ppo/config.yaml").read_text())["model"]["path"] == \
        r1["policy_out"]
    assert yaml.safe_load((tmp_path / "loop/round-002/generate/config.yaml").read_text())["model"] == \
        r1["policy_out"]
    # round 2's prompts: 6 new ones (not round 1's) and round 1's successful attacks
    p1, p2 = ([json.loads(x) for x in (tmp_path / f"loop/round-00{n}/prompts.jsonl").read_text().splitlines()]
              for n in (1, 2))
    found = _read(tmp_path / "loop/round-001/redteam/summary.json")["exported"]["prompts"]
    assert len(p1) == 6 and len(p2) == 6 + found
    assert not {p["id"] for p in p1} & {p["id"] for p in p2}
    assert sum(1 for p in p2 if "redteam" in p["meta"]) == found
    # the database: one batch per round, every prompt labelled once by the one labeler, never revised
    store = Store.open(str(tmp_path / "loop/feedback.db"))
    batches = {b.name: b for b in store.batches()}
    assert set(batches) == {"loop-round-001", "loop-round-002"}
    labels = store.labels()
    assert Counter(lab.batch for lab in labels) == {"loop-round-001": 6, "loop-round-002": len(p2)}
    assert all(lab.revision == 1 for lab in labels)
    assert labelled == Counter({"loop-round-001": 6, "loop-round-002": len(p2)})  # made once, not on the redo
    assert r2["labels"]["label_ids_this_round"] == sorted(lab.label_id for lab in labels
                                                           if lab.batch == "loop-round-002")
    assert r2["labels"]["labels_all_rounds"] == len(labels)
    store.close()
    # the report compares both rounds' policies
    results = _read(tmp_path / "loop/report/results.json")
    assert [m["name"] for m in results["models"]] == ["round-001", "round-002"]
    assert (tmp_path / "loop/report/report.html").exists()
    loop1, loop2 = summary["loop"]["round_1"], summary["loop"]["round_2"]
    assert loop2["previous_findings_success_rate"] is not None and loop2["reward_model_accuracy_newest"] is not None
    # each round against the start, round 2 also against round 1, on 5 suites x 2 held-out prompts
    assert "win_rate_vs_round_1" not in loop1 and 0 <= loop1["win_rate_vs_start"] <= 1
    lo, hi = loop2["win_rate_vs_round_1_ci95"]
    assert lo <= loop2["win_rate_vs_round_1"] <= hi
    assert len((tmp_path / "loop/round-002/eval/compare_round_1.jsonl").read_text().splitlines()) == 10

    # running again once everything is done does nothing but rewrite the report
    calls.clear()
    assert run_loop(cfg, say=lambda _: None)["rounds_done"] == 2
    assert not calls


@pytest.mark.slow
def test_dpo_rounds_chain_the_policy_without_a_reward_model(tmp_path, world_lm):
    import yaml

    cfg = loop_cfg(tmp_path / "loop", world_lm, redteam={"enabled": False},
                   update={"method": "dpo", "dpo": {"train": {"steps": 2, "batch_size": 2},
                                                    "data": {"max_length": 128}}})
    summary = run_loop(cfg, say=lambda _: None)
    assert summary["rounds_done"] == 2
    r2 = _read(tmp_path / "loop/round-002/round.json")
    assert r2["policy_in"] == str(tmp_path / "loop/round-001/dpo/final") and r2["method"] == "dpo"
    assert set(r2["steps"]) == {"prompts", "generate", "feedback", "dpo", "eval"}
    assert not (tmp_path / "loop/round-002/rm").exists()
    dpo_cfg = yaml.safe_load((tmp_path / "loop/round-002/dpo/config.yaml").read_text())
    assert dpo_cfg["model"]["path"] == r2["policy_in"]
    assert dpo_cfg["data"]["train"] == [str(tmp_path / "loop/round-002/feedback/train.jsonl")]


@pytest.mark.slow
def test_cli_waits_for_people_and_says_how_to_continue(tmp_path, world_lm):
    from conftest import run_cli
    from lmforge.feedback.store import Store

    store = Store.open(str(tmp_path / "loop/feedback.db"))
    store.create_user("ana", password="a-long-password")
    store.close()
    yaml_text = (
        f"out: {tmp_path / 'loop'}\npolicy: {world_lm}\nk: 2\nprompts: {{per_round: 3}}\n"
        "sampling: {max_new_tokens: 4, temperature: 1.0}\n"
        "feedback: {sources: [{kind: human, labelers: [ana]}]}\n")
    (tmp_path / "cfg.yaml").write_text(yaml_text)
    proc = run_cli(["loop", str(tmp_path / "cfg.yaml"), "rounds=1"], cwd=tmp_path,
                   env={"OMP_NUM_THREADS": "1"})
    assert "waiting: loop-round-001 waits for labels: 0/3 done" in " ".join(proc.stdout.split())
    assert (tmp_path / "loop/round-001/generate/summary.json").exists()
    assert not (tmp_path / "loop/round-001/feedback/summary.json").exists()
    bad = run_cli(["loop", str(tmp_path / "cfg.yaml"), "update.rm.model.path=x"], cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "update.rm.model.path is set by the loop" in bad.stderr
