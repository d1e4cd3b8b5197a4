"""``k_start``: from round 2, some of each prompt's K responses come from round 1's policy (the start), so the
labels compare the new behaviour with the old; each response names its model and the order is shuffled."""
from __future__ import annotations

import json
import shutil

import pytest

from lmforge.feedback.batchfile import read_batch
from lmforge.loop.run import Round

from .conftest import loop_cfg


def test_round_two_mixes_the_start_policy_into_each_prompt(tmp_path, world_lm):
    policy_1 = shutil.copytree(world_lm, tmp_path / "round1-policy")  # another folder: another model name
    cfg = loop_cfg(tmp_path / "loop", world_lm, k=4, k_start=2, prompts={"per_round": 6, "redteam_findings": False})
    (tmp_path / "loop" / "round-001" / "ppo").mkdir(parents=True)
    (tmp_path / "loop" / "round-001" / "ppo" / "summary.json").write_text(json.dumps({"final": str(policy_1)}))
    rnd = Round(cfg, 2, say=lambda _: None)
    rnd.prompts()
    summary = rnd.generate()
    assert summary["k"] == 4 and summary["k_start"] == 2 and summary["start_model"] == str(world_lm)
    items = list(read_batch(tmp_path / "loop" / "round-002" / "generate"))
    assert len(items) == 6
    positions = []
    for it in items:
        models = [r.model for r in it.responses]
        assert sorted(models) == sorted([str(world_lm)] * 2 + [str(policy_1)] * 2)
        positions.append(tuple(i for i, m in enumerate(models) if m == str(world_lm)))
        assert it.meta["k_start"] == 2 and it.meta.get("kind")  # the world fields the labeler reads are kept
    assert len(set(positions)) > 1  # shuffled: no position means "the start"
    assert json.loads((tmp_path / "loop" / "round-002" / "generate" / "summary.json").read_text()) == summary


def test_round_one_samples_all_k_from_the_start(tmp_path, world_lm):
    cfg = loop_cfg(tmp_path / "loop", world_lm, k=4, k_start=2, prompts={"per_round": 2, "redteam_findings": False})
    rnd = Round(cfg, 1, say=lambda _: None)
    rnd.prompts()
    assert rnd.generate()["k"] == 4
    items = list(read_batch(tmp_path / "loop" / "round-001" / "generate"))
    assert all(len(it.responses) == 4 and "k_start" not in it.meta for it in items)


@pytest.mark.parametrize("k, k_start", [(4, 1), (4, 3), (3, 2), (2, 2)])
def test_each_share_needs_two_responses(tmp_path, k, k_start):
    with pytest.raises(ValueError, match=f"k_start={k_start} with k={k}"):
        loop_cfg(tmp_path / "loop", tmp_path / "policy", k=k, k_start=k_start)
