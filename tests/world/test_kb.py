"""The knowledge base: sizes, consistency, and the seeded seen/held-out split."""
from __future__ import annotations

from collections import Counter

import pytest

from lmforge.world import World
from lmforge.world.facts import DIETS, KINDS
from lmforge.world.lexicon import Lexicon


def test_sizes_and_uniqueness(world: World) -> None:
    assert 110 <= len(world.countries) <= 130
    assert 38 <= len(world.animals) <= 50
    names = [c.name for c in world.countries]
    capitals = [c.capital for c in world.countries]
    assert len(set(names)) == len(names)
    assert len(set(capitals)) == len(capitals), "capitals must be unique to be an honest test"
    for c in world.countries:
        for value in (c.name, c.capital, c.continent, c.language, c.currency):
            assert value.isascii() and value.strip() == value and value
    assert {c.continent for c in world.countries} == {"Europe", "Asia", "Africa", "North America",
                                                      "South America", "Oceania"}
    for a in world.animals:
        assert a.kind in KINDS and a.diet in DIETS and a.legs in (0, 2, 4, 6, 8)
    assert {a.kind for a in world.animals} == set(KINDS)


def test_some_well_known_facts(world: World) -> None:
    """Spot checks that the hand-written table says what everyone knows."""
    assert world.country("France").capital == "Paris"
    assert world.country("Japan").currency == "yen"
    assert world.country("Brazil").language == "Portuguese"
    assert world.country("Kenya").continent == "Africa"
    assert world.country("Australia").capital == "Canberra"
    assert world.animal("bee").legs == 6
    assert world.animal("cow").diet == "herbivore"
    assert world.animal("shark").kind == "fish"
    with pytest.raises(KeyError):
        world.country("Atlantis")
    with pytest.raises(KeyError):
        world.animal("France")


def test_split_is_half_and_half_and_disjoint(world: World) -> None:
    for seen, held, everything in ((world.seen_countries, world.heldout_countries, world.countries),
                                   (world.seen_animals, world.heldout_animals, world.animals),
                                   (world.seen_problems, world.heldout_problems, world.problems)):
        assert not set(seen) & set(held)
        assert sorted(map(repr, seen + held)) == sorted(map(repr, everything))
        assert 0.4 <= len(seen) / len(everything) <= 0.6
    # stratified: every continent and every animal kind is on both sides
    for group in ({c.continent for c in world.seen_countries}, {c.continent for c in world.heldout_countries}):
        assert len(group) == 6
    assert {a.kind for a in world.seen_animals} == {a.kind for a in world.heldout_animals} == set(KINDS)
    assert all(world.is_heldout(c.name) for c in world.heldout_countries)
    assert not any(world.is_heldout(c.name) for c in world.seen_countries)


def test_split_is_deterministic_and_seeded() -> None:
    a, b, c = World(0), World(0), World(1)
    assert [x.name for x in a.seen_countries] == [x.name for x in b.seen_countries]
    assert [x.name for x in a.seen_animals] == [x.name for x in b.seen_animals]
    assert [x.name for x in a.seen_countries] != [x.name for x in c.seen_countries]


def test_lexicon_resolves_overlapping_names(world: World) -> None:
    lex: Lexicon = world.lexicon
    found = [(m.type, m.value) for m in lex.find("The capital of Mexico is Mexico City.")]
    assert found == [("country", "Mexico"), ("capital", "Mexico City")]
    found = [(m.type, m.value) for m in lex.find("Port of Spain is not in Spain.")]
    assert found == [("capital", "Port of Spain"), ("country", "Spain")]
    assert lex.values("The currency of Sierra Leone is the leone.", "currency") == ["leone"]
    assert lex.values("Sierra Leone is in Africa.", "currency") == []
    assert lex.values("The South Korean won is used there; people speak Korean.", "language") == ["Korean"]
    assert lex.values("The dolphin has no legs, the ant has 6 legs.", "legs") == ["0", "6"]
    assert lex.values("Tunisia and its capital Tunis.", "capital") == ["Tunis"]


def test_lexicon_claims(world: World) -> None:
    lex = world.lexicon
    wrong = lex.false_claims("The capital of France is Berlin. The cow is a herbivore.")
    assert [(c.subject, c.attribute, c.value) for c in wrong] == [("France", "capital", "Berlin")]
    assert lex.false_claims("Berlin is not the capital of France.") == []
    assert lex.false_claims("Three countries in Europe are France, Spain and Italy.") == []
    assert len(lex.false_claims("Three countries in Asia are France, Spain and Japan.")) == 2
    assert len(lex.false_claims("7 plus 5 is 13.")) == 1 and lex.false_claims("7 plus 5 is 12.") == []


def test_values_shared_by_several_countries_are_common(world: World) -> None:
    """Continent/language/currency answers repeat (so chance accuracy is not zero); capitals never do."""
    assert Counter(c.currency for c in world.countries).most_common(1)[0][0] == "euro"
    assert max(Counter(c.capital for c in world.countries).values()) == 1
