"""The simulated labeler: ground truth with noise 0, plausible disagreement with noise > 0."""
from __future__ import annotations

import random

import pytest

from lmforge.data.preference import CRITERIA as PREF_CRITERIA
from lmforge.data.preference import Likert, Ranking, ranking_to_pairs
from lmforge.world import CRITERIA, WEIGHTS, SimulatedLabeler, World
from lmforge.world.responses import typed_candidates


@pytest.fixture(scope="module")
def batch(world: World) -> list[tuple[dict, list[tuple[str, str]]]]:
    """(item, typed candidates) for a mix of train and held-out items of every kind."""
    items = world.eval_prompts("heldout", n=120, seed=1) + world.eval_prompts("train", n=120, seed=1)
    rng = random.Random(0)
    return [(it, typed_candidates(world, it, 6, rng)) for it in items]


def _kendall_tau(a: list[int], b: list[int]) -> float:
    pos_a = {x: i for i, x in enumerate(a)}
    pos_b = {x: i for i, x in enumerate(b)}
    n, agree = len(a), 0
    pairs = [(x, y) for i, x in enumerate(a) for y in a[i + 1:]]
    for x, y in pairs:
        agree += 1 if (pos_a[x] - pos_a[y]) * (pos_b[x] - pos_b[y]) > 0 else -1
    return agree / (n * (n - 1) / 2)


def test_label_shape_and_preference_format(world: World, batch: list) -> None:
    lab = SimulatedLabeler(world)
    assert tuple(CRITERIA) == tuple(PREF_CRITERIA) and abs(sum(WEIGHTS.values()) - 1) < 1e-9
    for it, cands in batch[:40]:
        texts = [t for _, t in cands]
        out = lab.label(it, texts)
        assert set(out) == {"scores", "ranking", "unsafe", "comment"}
        assert sorted(out["ranking"]) == list(range(len(texts)))
        assert len(out["scores"]) == len(out["unsafe"]) == len(texts)
        for s in out["scores"]:
            assert set(s) == set(CRITERIA) and all(isinstance(v, int) and 1 <= v <= 7 for v in s.values())
        assert out["comment"].startswith("Best: response ")
        # what labeling export will write must validate against the shared preference format
        r = Ranking(prompt=it["messages"], responses=texts, ranking=out["ranking"], source="simulated")
        assert len(ranking_to_pairs(r)) == len(texts) * (len(texts) - 1) // 2
        Likert(prompt=it["messages"], response=texts[0], scores=out["scores"][0])


def test_reference_ranks_first_without_noise(world: World, batch: list) -> None:
    lab = SimulatedLabeler(world, noise=0.0)
    for it, cands in batch:
        texts = [t for _, t in cands]
        out = lab.label(it, texts)
        best = cands[out["ranking"][0]]
        assert best[0] == "reference", (it, cands, out)
        assert lab.overall(it, it["reference"]) == pytest.approx(7.0)


def test_bad_answers_score_low(world: World, batch: list) -> None:
    lab = SimulatedLabeler(world)
    seen = {"wrong_entity": 0, "compliance": 0, "accepts_premise": 0, "rambling": 0, "refusal": 0}
    for it, cands in batch:
        texts = [t for _, t in cands]
        out = lab.label(it, texts)
        for i, (typ, text) in enumerate(cands):
            s = out["scores"][i]
            if typ == "wrong_entity":
                assert s["accuracy"] <= 2, (text, it)
            if typ in ("compliance", "partial_compliance"):
                assert s["harmlessness"] == 1 and out["unsafe"][i], text
            if typ == "accepts_premise":
                assert s["honesty"] == 1 and s["accuracy"] == 1, text
            if typ == "rambling":
                assert s["coherence"] <= 3, text
            if typ == "refusal":  # unnecessary refusal: not harmful, but not relevant
                assert s["harmlessness"] == 7 and s["relevance"] <= 2, text
            if typ in seen:
                seen[typ] += 1
            if it["kind"] != "harmful":
                assert not out["unsafe"][i]
            assert lab.overall(it, text) <= lab.overall(it, it["reference"])
    assert all(v > 0 for v in seen.values()), seen


def test_noise_changes_some_rankings_but_agrees_overall(world: World, batch: list) -> None:
    clean = SimulatedLabeler(world, noise=0.0)
    noisy = SimulatedLabeler(world, noise=0.7, seed=1)
    other = SimulatedLabeler(world, noise=0.7, seed=2)
    changed, taus, disagree = 0, [], 0
    for it, cands in batch:
        texts = [t for _, t in cands]
        truth = clean.label(it, texts)["ranking"]
        a, b = noisy.label(it, texts)["ranking"], other.label(it, texts)["ranking"]
        changed += a != truth
        disagree += a != b
        taus.append(_kendall_tau(truth, a))
    assert changed > len(batch) * 0.3
    assert disagree > len(batch) * 0.3
    assert sum(taus) / len(taus) > 0.75  # measured ~0.85 at noise 0.7


def test_labels_are_deterministic_and_order_free(world: World, batch: list) -> None:
    lab = SimulatedLabeler(world, noise=1.0, seed=7)
    first = [lab.label(it, [t for _, t in c]) for it, c in batch[:30]]
    again = [SimulatedLabeler(world, noise=1.0, seed=7).label(it, [t for _, t in c]) for it, c in reversed(batch[:30])]
    assert first == list(reversed(again))
    with pytest.raises(ValueError):
        SimulatedLabeler(world, noise=-1)
