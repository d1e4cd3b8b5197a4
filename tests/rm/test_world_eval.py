"""The built-in world's held-out evaluation names each candidate's type, so pairs split into knowledge / format."""
from __future__ import annotations

from lmforge.data.reward_data import DataReport, HeadSpec, build_groups
from lmforge.eval.reward_eval import KNOWLEDGE_TYPES, eval_pairs
from lmforge.stages.rm import world_heldout_eval
from lmforge.world import World


def test_heldout_rankings_carry_candidate_types_that_split_the_pairs() -> None:
    world = World(0)
    rankings = world_heldout_eval(world, 40, 4, 0)
    items = {it["id"]: it for it in world.eval_prompts("heldout", n=40, seed=0)}
    for r in rankings:
        types = r.meta["candidate_types"]
        assert len(types) == len(r.responses) == 4
        assert r.responses[types.index("reference")] == items[r.id]["reference"]
    pairs = eval_pairs(build_groups(rankings, HeadSpec([]), DataReport()))
    cats = {p.category for p in pairs}
    assert cats == {"knowledge", "format"}  # every response typed: no pair left uncategorised
    assert "wrong_entity" in KNOWLEDGE_TYPES and "hedge" not in KNOWLEDGE_TYPES
