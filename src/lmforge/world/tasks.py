"""Question-answer items about the world: fact QA, arithmetic and multi-turn dialogues.

An *item* is the common currency of every dataset here: ``{"id", "messages" (ending with a user turn), "kind",
"category", "split", "reference", "meta"}``. Evaluation prompts are items as they are; an SFT example is an item
with its reference appended as the final assistant turn. ``meta`` holds the truth the checker and the labeler
need, e.g. ``{"subject": "France", "subject_type": "country", "attribute": "capital", "value": "Paris"}``.

Answers restate the fact in the pre-training canonical form with words before the entity ("The capital of
France is Paris.") because that form carries knowledge from prose to QA; follow-up questions use pronouns
("What currency does it use?") but answers still name the subject.
"""
from __future__ import annotations

import random
from typing import Any

from .kb import (
    ANIMAL_ATTRIBUTES,
    COUNTRY_ATTRIBUTES,
    OPS,
    Animal,
    Country,
    Problem,
    World,
)
from .phrasings import canonical_animal, canonical_arith, canonical_country
from .text import pick, stable_id

Item = dict[str, Any]

QUESTIONS: dict[str, list[str]] = {
    "capital": ["What is the capital of {s}?", "Which city is the capital of {s}?", "What is the capital city of {s}?",
                "Tell me the capital of {s}.", "Name the capital of {s}.", "Do you know the capital of {s}?"],
    "continent": ["What continent is {s} in?", "On which continent is {s}?", "Which continent does {s} belong to?",
                  "Where is {s} located?", "On which continent can you find {s}?"],
    "language": ["What is the official language of {s}?", "What language do people speak in {s}?",
                 "Which language is spoken in {s}?", "What is the main language of {s}?"],
    "currency": ["What is the currency of {s}?", "What money do people use in {s}?", "Which currency does {s} use?",
                 "What do people pay with in {s}?"],
    "kind": ["What kind of animal is the {s}?", "What type of animal is the {s}?",
             "Which group of animals does the {s} belong to?",
             "Is the {s} a mammal, a bird, a fish, a reptile, an amphibian or an insect?"],
    "diet": ["What does the {s} eat?", "Is the {s} a herbivore, a carnivore or an omnivore?",
             "What kind of food does the {s} eat?", "What is the diet of the {s}?"],
    "habitat": ["Where does the {s} live?", "What is the habitat of the {s}?", "Where can you usually find the {s}?"],
    "legs": ["How many legs does the {s} have?", "Count the legs of the {s}. How many are there?",
             "How many legs has the {s} got?"],
}
FOLLOWUPS: dict[str, list[str]] = {
    "capital": ["And what is its capital?", "What is its capital city?", "Which city is its capital?"],
    "continent": ["Which continent is it in?", "And where is it located?"],
    "language": ["What language do people speak there?", "And what is its official language?"],
    "currency": ["What currency does it use?", "And what money do people use there?"],
    "kind": ["What kind of animal is it?", "And what type of animal is it?"],
    "diet": ["What does it eat?", "And what is its diet?"],
    "habitat": ["Where does it live?", "And what is its habitat?"],
    "legs": ["How many legs does it have?", "And how many legs does it have?"],
}
ARITH_QUESTIONS = ["What is {a} {op} {b}?", "How much is {a} {op} {b}?", "Calculate {a} {op} {b}.",
                   "What is {a} {sym} {b}?", "Can you tell me what {a} {op} {b} is?"]
OP_SYMBOLS = {"plus": "+", "minus": "-", "times": "x"}
OP_CATEGORIES = {"plus": "addition", "minus": "subtraction", "times": "multiplication"}
DIALOGUE_CATEGORIES = ("country_followup", "two_countries", "animal_followup", "mixed")


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def make_item(kind: str, category: str, split: str, messages: list[dict[str, str]], reference: str,
              meta: dict[str, Any]) -> Item:
    """An item; its id depends only on the prompt, so the same prompt is the same item everywhere."""
    return {"id": stable_id(kind, split, messages), "messages": messages, "kind": kind, "category": category,
            "split": split, "reference": reference, "meta": meta}


def as_sft(item: Item) -> Item:
    """The SFT form: the reference appended as the last assistant turn (id over the whole conversation)."""
    messages = item["messages"] + [assistant(item["reference"])]
    return {"id": stable_id("sft", item["kind"], item["split"], messages), "messages": messages,
            "kind": item["kind"], "category": item["category"], "split": item["split"], "meta": item["meta"]}


# ----- facts --------------------------------------------------------------------------------------------------
def fact_meta(entity: Country | Animal, attribute: str) -> dict[str, Any]:
    subject_type = "country" if isinstance(entity, Country) else "animal"
    return {"subject": entity.name, "subject_type": subject_type, "attribute": attribute,
            "value": entity.get(attribute)}


def fact_answer(entity: Country | Animal, attribute: str, value: str | None = None) -> str:
    """The canonical answer sentence (``value`` overrides the truth, for wrong candidate answers)."""
    if isinstance(entity, Country):
        return canonical_country(entity, attribute, value)
    return canonical_animal(entity, attribute, value)


def fact_category(entity: Country | Animal, attribute: str) -> str:
    return attribute if isinstance(entity, Country) else f"animal_{attribute}"


def fact_qa_items(world: World, split: str, rng: random.Random, per_fact: int = 1) -> list[Item]:
    """``per_fact`` differently-phrased questions for every fact of every entity in the split."""
    items = []
    entities: list[Country | Animal] = [*world.countries_in(split), *world.animals_in(split)]
    for e in entities:
        attrs = COUNTRY_ATTRIBUTES if isinstance(e, Country) else ANIMAL_ATTRIBUTES
        for attr in attrs:
            for template in rng.sample(QUESTIONS[attr], min(per_fact, len(QUESTIONS[attr]))):
                items.append(make_item("fact_qa", fact_category(e, attr), split, [user(template.format(s=e.name))],
                                       fact_answer(e, attr), fact_meta(e, attr)))
    return items


# ----- arithmetic ---------------------------------------------------------------------------------------------
def arith_meta(p: Problem) -> dict[str, Any]:
    return {"subject": p.text, "subject_type": "arithmetic", "attribute": "result", "value": str(p.value),
            "a": p.a, "b": p.b, "op": p.op}


def arith_question(p: Problem, rng: random.Random) -> str:
    return pick(rng, ARITH_QUESTIONS).format(a=p.a, b=p.b, op=p.op, sym=OP_SYMBOLS[p.op])


def arithmetic_items(world: World, split: str, rng: random.Random, count: int) -> list[Item]:
    """``count`` problems, the three operations in turn (there are far more sums than products)."""
    by_op = [[p for p in world.problems_in(split) if p.op == op] for op in OPS]
    for problems in by_op:
        rng.shuffle(problems)
    interleaved = [ps[i] for i in range(max(map(len, by_op))) for ps in by_op if i < len(ps)]
    chosen = interleaved[:count]
    return [make_item("arithmetic", OP_CATEGORIES[p.op], split, [user(arith_question(p, rng))], canonical_arith(p),
                      arith_meta(p)) for p in chosen]


# ----- dialogues ----------------------------------------------------------------------------------------------
Turn = tuple[str, str, dict[str, Any]]  # (question, answer, meta)


def _fact_turn(e: Country | Animal, attr: str, rng: random.Random, followup: bool) -> Turn:
    q = pick(rng, FOLLOWUPS[attr]) if followup else pick(rng, QUESTIONS[attr]).format(s=e.name)
    return q, fact_answer(e, attr), fact_meta(e, attr)


def _entity_turns(e: Country | Animal, n: int, rng: random.Random) -> list[Turn]:
    attrs = COUNTRY_ATTRIBUTES if isinstance(e, Country) else ANIMAL_ATTRIBUTES
    return [_fact_turn(e, attr, rng, i > 0) for i, attr in enumerate(rng.sample(attrs, n))]


def _two_countries(world: World, split: str, rng: random.Random, n: int) -> list[Turn]:
    attr = pick(rng, COUNTRY_ATTRIBUTES)
    cs = rng.sample(world.countries_in(split), n)
    turns = [_fact_turn(cs[0], attr, rng, False)]
    for c in cs[1:]:
        q = pick(rng, ["And what about {s}?", "What about {s}?", "And for {s}?"]).format(s=c.name)
        turns.append((q, fact_answer(c, attr), fact_meta(c, attr)))
    return turns


def _mixed(world: World, split: str, rng: random.Random, n: int) -> list[Turn]:
    makers = [lambda: _fact_turn(pick(rng, world.countries_in(split)), pick(rng, COUNTRY_ATTRIBUTES), rng, False),
              lambda: _fact_turn(pick(rng, world.animals_in(split)), pick(rng, ANIMAL_ATTRIBUTES), rng, False),
              lambda: _arith_turn(pick(rng, world.problems_in(split)), rng)]
    return [pick(rng, makers)() for _ in range(n)]


def _arith_turn(p: Problem, rng: random.Random) -> Turn:
    return arith_question(p, rng), canonical_arith(p), arith_meta(p)


def dialogue_item(world: World, split: str, rng: random.Random, category: str) -> Item:
    """A 2-3 user-turn conversation; earlier assistant turns are correct, the last one is the reference."""
    n = rng.randint(2, 3)
    if category == "country_followup":
        turns = _entity_turns(pick(rng, world.countries_in(split)), n, rng)
    elif category == "animal_followup":
        turns = _entity_turns(pick(rng, world.animals_in(split)), n, rng)
    elif category == "two_countries":
        turns = _two_countries(world, split, rng, n)
    else:
        turns = _mixed(world, split, rng, n)
    messages: list[dict[str, str]] = []
    for q, a, _ in turns[:-1]:
        messages += [user(q), assistant(a)]
    q, a, meta = turns[-1]
    messages.append(user(q))
    return make_item("dialogue", category, split, messages, a, {**meta, "turns": len(turns)})


def dialogue_items(world: World, split: str, rng: random.Random, count: int) -> list[Item]:
    return [dialogue_item(world, split, rng, DIALOGUE_CATEGORIES[i % len(DIALOGUE_CATEGORIES)])
            for i in range(count)]
