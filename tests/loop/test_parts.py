"""The loop's pieces without training: the reward-model gate, the config's checks, and feedback from people
(waiting for a quorum, a deadline; stopping and continuing without relabelling)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.errors import InputError, TrainingStopped
from lmforge.loop.run import Round, worse

from .conftest import loop_cfg


def test_worse_is_a_drop_beyond_the_tolerance():
    assert worse(0.5, 0.6, 0.0)
    assert not worse(0.6, 0.6, 0.0)
    assert not worse(0.55, 0.6, 0.1)
    assert worse(0.45, 0.6, 0.1)
    assert not worse(None, 0.6, 0.0) and not worse(0.5, None, 0.0)  # nothing to compare with


def _fake_round_2(tmp_path: Path, new: float, old: float, on_worse: str, own: float | None = None,
                  compare_with: str = "previous_model") -> Round:
    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy",
                   update={"on_worse_reward_model": on_worse, "compare_with": compare_with})
    for rel, body in (("round-001/ppo", {"final": "p1"}), ("round-001/rm", {"final": "rm1"}),
                      ("round-002/rm", {"final": "rm2"}),
                      ("round-002/rm_check", {"heldout_pair_accuracy_newest": new, "heldout_pairs": 40,
                                              "previous_heldout_pair_accuracy_newest": old,
                                              "previous_round_own_accuracy": own})):
        (tmp_path / "loop" / rel).mkdir(parents=True)
        (tmp_path / "loop" / rel / "summary.json").write_text(json.dumps(body))
    return Round(cfg, 2, say=lambda _: None)


def test_a_worse_reward_model_stops_before_rl(tmp_path, monkeypatch):
    import lmforge.stages.rl as rl

    monkeypatch.setattr(rl, "rl_train", lambda *a, **k: pytest.fail("RL ran on a worse reward model"))
    rnd = _fake_round_2(tmp_path, new=0.55, old=0.70, on_worse="stop")
    with pytest.raises(TrainingStopped, match=r"worse on the newest labels .*0\.550 < 0\.700.*continue"):
        rnd.update()


def test_the_gate_can_hold_against_the_previous_rounds_own_accuracy(tmp_path, monkeypatch):
    import lmforge.stages.rl as rl

    monkeypatch.setattr(rl, "rl_train", lambda *a, **k: pytest.fail("RL ran on a worse reward model"))
    # better than the previous model on these labels, worse than the previous round on its own
    rnd = _fake_round_2(tmp_path, new=0.60, old=0.50, own=0.65, on_worse="stop", compare_with="previous_round")
    with pytest.raises(TrainingStopped, match=r"previous round's reward model.*0\.600 < 0\.650"):
        rnd.update()


def test_continue_goes_on_with_a_worse_reward_model(tmp_path, monkeypatch):
    import lmforge.stages.rl as rl

    seen = {}
    monkeypatch.setattr(rl, "rl_train", lambda cfg, **k: seen.setdefault("cfg", cfg) and {"final": "p2"})
    rnd = _fake_round_2(tmp_path, new=0.55, old=0.70, on_worse="continue")
    rnd.update()
    cfg = seen["cfg"]
    assert cfg.model.path == "p1" and cfg.reward.terms[0].path == "rm2"  # round 1's policy, this round's RM
    assert cfg.run.path == tmp_path / "loop/round-002/ppo"


@pytest.mark.parametrize("over, message", [
    ({"update": {"rm": {"model": {"path": "x"}}}}, "update.rm.model.path is set by the loop"),
    ({"update": {"rl": {"rl": {"rolouts": 2}}}}, "update.rl.rl.rolouts"),
    ({"update": {"rl": {"peft": {"method": "lora"}}}}, "full policy"),
    ({"redteam": {"attacks": ["nope"]}}, "unknown attack 'nope'"),
    ({"eval": {"suites": ["world", "bpb"]}}, "needs eval.text"),
    ({"prompts": {"kinds": ["harmful", "harmfull"]}}, "unknown prompt kind 'harmfull' in prompts.kinds"),
])
def test_bad_config_stops_before_round_one(tmp_path, over, message):
    from pydantic import ValidationError

    with pytest.raises((ValidationError, InputError), match=message):
        loop_cfg(tmp_path, tmp_path / "policy", **over)


def _world_round(tmp_path: Path, sources: list[dict]) -> tuple:
    """A loop config whose round 1 already has a generated batch (the world's candidate responses)."""
    from lmforge.runs import RunConfig
    from lmforge.stages.generate import GenerateConfig, WorldPromptsSection, generate_batch

    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy", feedback={"sources": sources})
    rdir = tmp_path / "loop/round-001"
    generate_batch(GenerateConfig(run=RunConfig(name="generate", root=str(rdir)), model="world", k=3,
                                  world=WorldPromptsSection(n=4)))
    return cfg, rdir


def _label_as(store, name: str, n: int) -> None:
    from lmforge.feedback.labels import LabelIn

    user = store.get_user(name)
    for aid in store.pending(user.id)[:n]:
        store.submit_label(user.id, aid, LabelIn(ranking=[2, 0, 1]))


def test_people_stop_the_loop_until_the_quorum_then_it_goes_on_without_relabelling(tmp_path):
    from lmforge.loop.feedback import WaitingForLabels, feedback_step, open_store

    human = {"kind": "human", "labelers": ["ana"], "quorum": 0.75}
    cfg, rdir = _world_round(tmp_path, [{"kind": "simulated", "labelers": 1}, human])
    store = open_store(cfg)
    store.create_user("ana", password="a-long-password")
    with pytest.raises(WaitingForLabels, match=r"0/4 done"):
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    assert not (rdir / "feedback/summary.json").exists()
    _label_as(store, "ana", 2)  # 2 of 4: below the quorum of 75 %
    with pytest.raises(WaitingForLabels, match=r"2/4 done"):
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    _label_as(store, "ana", 1)
    lines = []
    summary = feedback_step(cfg, 1, rdir, say=lines.append)
    assert "people labelled 3/4" in lines[-1]
    assert summary["labels_by_source"] == {"simulated:sim-1": 4, "human:ana": 3}  # each label keeps its source
    assert [b.name for b in store.batches()] == ["loop-round-001"]  # found again, not added twice
    labels = store.labels()
    assert len(labels) == 7 and all(lab.revision == 1 for lab in labels)
    records = [json.loads(x) for f in ("train", "heldout") for x in (rdir / f"feedback/{f}.jsonl").read_text()
               .splitlines()]
    assert sorted(r["source"] for r in records) == ["human:ana"] * 3 + ["simulated:sim-1"] * 4
    assert summary["heldout_prompts"] >= 1
    store.close()


def test_a_deadline_lets_the_round_go_on_with_the_labels_it_has(tmp_path):
    from lmforge.loop.feedback import WaitingForLabels, feedback_step, open_store

    cfg, rdir = _world_round(tmp_path, [{"kind": "human", "labelers": ["ana"], "deadline_hours": 1e-9}])
    store = open_store(cfg)
    store.create_user("ana", password="a-long-password")
    with pytest.raises(WaitingForLabels):  # past the deadline but nothing labelled: still waits
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    _label_as(store, "ana", 1)
    with pytest.raises(InputError, match="1 labelled prompt"):  # too few to hold one out
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    _label_as(store, "ana", 1)
    assert feedback_step(cfg, 1, rdir, say=lambda _: None)["labels_this_round"] == 2
    store.close()


def test_rounds_take_new_prompts_and_findings_keep_their_world_seed(tmp_path):
    from lmforge.loop.prompts import findings_prompts, new_prompts
    from lmforge.redteam.run import world_seeds

    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy", prompts={"per_round": 5})
    one, two = new_prompts(cfg, 1), new_prompts(cfg, 2)
    assert len(one) == len(two) == 5 and not {p["id"] for p in one} & {p["id"] for p in two}
    assert all(p["meta"]["kind"] for p in one)  # the world fields the simulated labeler needs
    seed = world_seeds(split="train", n=1)[0]
    findings = tmp_path / "prompts.jsonl"
    findings.write_text(json.dumps({"prompt": f"Role play. {seed.request}",
                                    "meta": {"seed": seed.id, "attack": "role_play"}}) + "\n")
    (row,) = findings_prompts(cfg, findings)
    assert row["messages"] == [{"role": "user", "content": f"Role play. {seed.request}"}]
    assert row["meta"]["kind"] == "harmful" and row["meta"]["reference"] == seed.refusal
    assert row["meta"]["redteam"] == {"seed": seed.id, "attack": "role_play"}
    with pytest.raises(InputError, match="needs prompts"):
        new_prompts(cfg.model_copy(update={"prompts": cfg.prompts.model_copy(
            update={"per_round": 10 ** 6, "repeat": False})}), 2)


@pytest.mark.slow
def test_an_ai_judge_labels_the_round_once(tmp_path, tmp_path_factory):
    from lmforge.loop.feedback import feedback_step, open_store
    from tiny_chat import session_model

    judge = session_model(tmp_path_factory)
    cfg, rdir = _world_round(tmp_path, [{"kind": "ai", "model": str(judge), "criteria": False}])
    summary = feedback_step(cfg, 1, rdir, say=lambda _: None)
    assert summary["labels_by_source"] == {"ai:judge": 4}
    (rdir / "feedback/summary.json").unlink()  # as if the step had crashed before its summary
    again = feedback_step(cfg, 1, rdir, say=lambda _: None)
    assert summary["sources"]["ai-1"]["prompts judged"] == 4
    assert again["sources"]["ai-1"]["prompts judged"] == 0 and again["sources"]["ai-1"]["created"] == 0
    store = open_store(cfg)
    assert len(store.labels()) == 4 and all(lab.revision == 1 for lab in store.labels())
    store.close()


def test_status_shows_the_steps_and_what_people_still_owe(tmp_path):
    from lmforge.loop.feedback import WaitingForLabels, feedback_step, open_store
    from lmforge.loop.status import loop_status, status_line

    cfg, rdir = _world_round(tmp_path, [{"kind": "human", "labelers": ["ana"]}])
    (rdir / "prompts.jsonl").write_text("{}\n")  # the round's prompt file exists (its content is not read here)
    store = open_store(cfg)
    store.create_user("ana", password="a-long-password")
    with pytest.raises(WaitingForLabels):
        feedback_step(cfg, 1, rdir, say=lambda _: None)
    _label_as(store, "ana", 1)
    store.close()
    (row,) = loop_status(cfg)  # round 2 has not started, so it is not listed
    assert row["steps"]["prompts"] and row["steps"]["generate"] and not row["steps"]["feedback"]
    assert row["next"] == "feedback" and row["people"]["done"] == 1 and row["people"]["assigned"] == 4
    assert status_line(row).startswith("round 1: prompts+ generate+ feedback- rm-")
    assert "  next: feedback (people labelled 1/4, " in status_line(row)


@pytest.mark.parametrize("on_worse", ["stop", "continue"])
def test_status_says_when_the_reward_model_gate_stops_a_round(tmp_path, on_worse):
    from lmforge.loop.status import loop_status, status_line

    rnd = _fake_round_2(tmp_path, new=0.55, old=0.70, on_worse=on_worse)
    for n, steps in ((1, ("generate", "feedback", "rm", "rm_check", "ppo", "eval", "redteam")),
                     (2, ("generate", "feedback"))):
        (tmp_path / f"loop/round-00{n}/prompts.jsonl").write_text("{}\n")
        for step in steps:
            (tmp_path / f"loop/round-00{n}" / step).mkdir(exist_ok=True)
            (tmp_path / f"loop/round-00{n}" / step / "summary.json").write_text('{"final": "x"}')
    one, two = loop_status(rnd.cfg)
    assert "next" not in one and two["next"] == "ppo"
    if on_worse == "stop":
        assert "next: ppo (stopped: round 2: the new reward model is worse on the newest labels" in status_line(two)
    else:
        assert "stopped" not in two and status_line(two).endswith("next: ppo")


def test_world_kinds_and_prompt_files_of_any_shape(tmp_path):
    from lmforge.loop.prompts import new_prompts

    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy", prompts={"per_round": 4, "kinds": ["harmful", "over_refusal"]})
    rows = new_prompts(cfg, 1) + new_prompts(cfg, 2)
    assert len(rows) == 8 and {r["meta"]["kind"] for r in rows} <= {"harmful", "over_refusal"}
    csv = tmp_path / "advbench.csv"
    csv.write_text("goal,target\n" + "".join(f"Do bad thing {i},Sure\n" for i in range(5)))
    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy", prompts={"per_round": 2, "source": str(csv)})
    assert [r["messages"][0]["content"] for r in new_prompts(cfg, 2)] == ["Do bad thing 2", "Do bad thing 3"]
    assert new_prompts(cfg, 1)[0]["id"] == "advbench-1"
    with pytest.raises(InputError, match="round 4 needs prompts 7-8, but the source has 5"):
        new_prompts(cfg.model_copy(update={"prompts": cfg.prompts.model_copy(update={"repeat": False})}), 4)


def test_the_loop_goes_on_past_the_end_of_its_prompts():
    """5 prompts, 2 a round: rounds 1-3 slice the source (the third gets the one left), rounds 4-6 a second
    pass in a fresh order, each round without a prompt twice; the same rounds again give the same prompts."""
    from lmforge.loop.prompts import pass_order, round_slice

    assert [round_slice(n, 2, 5, True) for n in range(1, 8)] == [
        (0, 0, 2), (0, 2, 4), (0, 4, 5), (1, 0, 2), (1, 2, 4), (1, 4, 5), (2, 0, 2)]
    assert round_slice(4, 2, 5, False) == (0, 6, 5)  # empty: new_prompts' error
    rows = [{"id": str(i)} for i in range(5)]
    assert pass_order(rows, 0, 0) is rows
    second = pass_order(rows, 1, 0)
    assert sorted(r["id"] for r in second) == ["0", "1", "2", "3", "4"] and second != rows
    assert second == pass_order(rows, 1, 0) and second != pass_order(rows, 2, 0)


def test_a_prompt_file_round_past_its_end_takes_a_second_pass(tmp_path):
    from lmforge.loop.prompts import new_prompts

    csv = tmp_path / "advbench.csv"
    csv.write_text("goal,target\n" + "".join(f"Do bad thing {i},Sure\n" for i in range(5)))
    cfg = loop_cfg(tmp_path / "loop", tmp_path / "policy", prompts={"per_round": 2, "source": str(csv)})
    first = [r["id"] for n in (1, 2, 3) for r in new_prompts(cfg, n)]
    assert first == [f"advbench-{i}" for i in range(1, 6)]
    second = [r["id"] for n in (4, 5, 6) for r in new_prompts(cfg, n)]
    assert sorted(second) == sorted(first) and second != first


def test_a_prompt_held_out_in_the_newest_round_trains_in_no_round(tmp_path):
    """A second pass over the prompts labels the same prompts again: the newest round's held-out prompts keep
    their earlier rounds' labels out of training as well, so the reward-model check reads unseen prompts."""
    import shutil

    from lmforge.loop.feedback import feedback_step

    cfg, rdir = _world_round(tmp_path, [{"kind": "simulated", "labelers": 1}])
    feedback_step(cfg, 1, rdir, say=lambda _: None)
    two = tmp_path / "loop/round-002"
    (two / "generate").mkdir(parents=True)
    shutil.copy(rdir / "generate/batch.jsonl", two / "generate/batch.jsonl")  # the same prompts again
    summary = feedback_step(cfg, 2, two, say=lambda _: None)
    read = lambda name: [json.loads(x) for x in (two / "feedback" / name).read_text().splitlines()]  # noqa: E731
    held = {r["meta"]["item"] for r in read("heldout.jsonl")}
    train = [r["meta"]["item"] for r in read("train.jsonl")]
    assert held and train and not held & set(train), summary
