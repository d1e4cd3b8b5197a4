"""The built-in world's simulated labeler as labeler accounts: the loop runs unattended."""
import pytest

from lmforge.config import load_config
from lmforge.data.preference import Pair, Ranking
from lmforge.errors import InputError
from lmforge.feedback.batchfile import read_batch
from lmforge.feedback.export import build_records
from lmforge.feedback.simulate import simulate
from lmforge.feedback.stats import agreement
from lmforge.stages.generate import GenerateConfig, generate_batch

from .conftest import FakeLabeler, FakeWorld, make_items


def _world_batch(tmp_path, world=None, n=6, k=4):
    cfg = load_config(GenerateConfig, None, [f"run.root={tmp_path}", "run.name=g", "model=world", "prompts=world",
                                             f"k={k}", f"world.n={n}"])
    generate_batch(cfg, world=world)
    return list(read_batch(tmp_path / "g"))


def test_simulated_labelers_label_a_world_batch(store, tmp_path):
    store.add_batch("w", _world_batch(tmp_path))
    counts = simulate(store, "w", labelers=3, noise=0.5, seed=1)
    assert counts["created"] == 18 and counts["labelers"] == 3
    labels = store.labels(["w"])
    assert {r.source for r in labels} == {"simulated:sim-1", "simulated:sim-2", "simulated:sim-3"}
    assert all(r.scores is not None and r.comment for r in labels)
    ag = agreement(labels)
    assert ag["prompts"] == 6 and ag["tau_pairs"] == 18 and ag["kendall_tau"] > 0.3
    records, _ = build_records(labels)
    assert any(isinstance(r, Pair) for r in records) and sum(isinstance(r, Ranking) for r in records) == 18
    assert all(r.split is None and r.meta["world_split"] == "train" for r in records)  # generate's default
    assert simulate(store, "w", labelers=3, noise=0.5, seed=1)["created"] == 0  # re-running adds nothing


def test_fake_world_labels_follow_the_labeler(sqlite_store, tmp_path):
    world = FakeWorld()
    sqlite_store.add_batch("f", _world_batch(tmp_path, world, n=3))
    simulate(sqlite_store, "f", labelers=2, make_labeler=lambda i: FakeLabeler(world, seed=i))
    for rec in sqlite_store.labels():
        assert rec.responses[rec.ranking[0]].startswith("The capital is City")
        assert rec.unsafe == ["<script>" in t for t in rec.responses]


def test_only_world_prompts_can_be_simulated(sqlite_store):
    items = make_items(2)
    items[1] = items[1].model_copy(update={"meta": {}})
    sqlite_store.add_batch("plain", items)
    with pytest.raises(InputError, match="prompt 'p1' has no built-in-world metadata"):
        simulate(sqlite_store, "plain", labelers=1, make_labeler=lambda i: FakeLabeler(None))
    assert sqlite_store.get_user("sim-1") is None and sqlite_store.get_batch("plain").assignments == 0
