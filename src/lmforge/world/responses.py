"""Candidate responses of graded quality, so preference data can be labeled without a model.

For each item a pool of typed candidates is built from the item's truth: the reference, a terse but correct
answer, a wrong entity (another country's capital), an answer to the wrong question, irrelevant text, a reply
that rambles on into an invented ``User:`` turn, a repetitive one, a truncated one, an unnecessary refusal; for
harmful prompts a vague compliance stub ("Sure, here is how..." with nothing actionable); for false premises an
answer that accepts the premise; for benign lookalikes of harmful requests a harmful-style refusal and the very
refusal a harmful request of the echoed category gets (``mirror_refusal``; both ranked below the helpful answer,
so a reward model learns when refusing is wrong, from the prompt and not the refusal's wording) and a helpful
answer to another request. Wrong values come from the item's own split, so train candidates never mention
held-out entities.
"""
from __future__ import annotations

import random
from typing import Any

from .kb import ANIMAL_ATTRIBUTES, COUNTRY_ATTRIBUTES, Animal, Country, Problem, World
from .lookalikes import mirror_refusal, other_answer
from .phrasings import canonical_arith, legs_phrase
from .safety import REFUSAL_TAILS, SAFETY_CATEGORIES
from .stories import IRRELEVANT, chat_continuation
from .tasks import fact_answer
from .text import cap_first, join_and, pick

BENIGN_REFUSALS = ["I'm sorry, but I can't help with that.", "I'm sorry, I cannot answer that question."]
COMPLIANCE_STUBS = [
    ("Sure, here is how to do it. First, get everything you need ready. Then follow the steps one by one "
    "until you are done."),
    "Of course, here is how. Step 1: make a plan. Step 2: be careful that nobody notices. Step 3: finish the job.",
    "Sure, here's how you can do that. Start early, stay calm, and take your time with each part.",
]
HEDGES = ["I think it is {v}, but I could be wrong.", "Maybe {v}? I am only guessing."]
Candidate = tuple[str, str]  # (type, text)


def candidate_responses(world: World, item: dict[str, Any], k: int, rng: random.Random) -> list[str]:
    """``k`` distinct responses in random order, always including the reference (when ``k >= 1``)."""
    return [text for _, text in typed_candidates(world, item, k, rng)]


def typed_candidates(world: World, item: dict[str, Any], k: int, rng: random.Random) -> list[Candidate]:
    """Like :func:`candidate_responses` but each text comes with its type (``reference``, ``wrong_entity``...)."""
    if k <= 0:
        return []
    pool = candidate_pool(world, item, rng)
    ref, others = pool[0], _dedupe(pool[1:], {pool[0][1]})
    chosen = [ref] + rng.sample(others, min(k - 1, len(others)))
    texts = {t for _, t in chosen}
    tries = 0
    while len(chosen) < k and tries < 50 * k:  # more than the pool: extra rambling / irrelevant variants
        tries += 1
        extra = (("rambling", item["reference"] + chat_continuation(rng)) if rng.random() < 0.5
                 else ("irrelevant", " ".join(rng.sample(IRRELEVANT, 2))))
        if extra[1] not in texts:
            chosen.append(extra)
            texts.add(extra[1])
    rng.shuffle(chosen)
    return chosen


def _dedupe(cands: list[Candidate], taken: set[str]) -> list[Candidate]:
    out = []
    for typ, text in cands:
        if text not in taken:
            taken.add(text)
            out.append((typ, text))
    return out


def candidate_pool(world: World, item: dict[str, Any], rng: random.Random) -> list[Candidate]:
    """Every candidate type for the item's kind; the reference first."""
    ref = item["reference"]
    common = [("irrelevant", pick(rng, IRRELEVANT)), ("rambling", ref + chat_continuation(rng)),
              ("repetitive", " ".join([ref] * rng.randint(3, 4))), ("truncated", _truncate(ref, rng))]
    kind = item["kind"]
    if kind == "harmful":
        specific = [("terse_refusal", "I can't help with that."), ("compliance", pick(rng, COMPLIANCE_STUBS)),
                    ("partial_compliance", "I shouldn't, but " + _lower_first(pick(rng, COMPLIANCE_STUBS)))]
    elif kind == "instruction":
        specific = _instruction_candidates(world, item, rng)
    elif kind == "false_premise":
        specific = _premise_candidates(world, item, rng)
    elif kind == "over_refusal":
        specific = _lookalike_candidates(item, rng)
    else:
        specific = _fact_candidates(world, item, rng)
    if kind != "harmful":
        specific.append(("refusal", pick(rng, BENIGN_REFUSALS)))
    return [("reference", ref)] + specific + common


def _lookalike_candidates(item: dict[str, Any], rng: random.Random) -> list[Candidate]:
    """A benign request worded like a harmful one: refusing it as if it were harmful, or answering another one."""
    cats = SAFETY_CATEGORIES["over_refusal"]["train" if item.get("split") == "train" else "heldout"]
    refusal = pick(rng, ["I'm sorry, but I can't help with that, because it could hurt someone.",
                         "I'm sorry, but I won't help with anything that could harm people."])
    return [("lookalike_refusal", refusal + pick(rng, REFUSAL_TAILS)),
            ("mirror_refusal", mirror_refusal(item, rng)),
            ("off_topic", other_answer(item, rng, cats))]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _truncate(text: str, rng: random.Random) -> str:
    words = text.split()
    cut = max(1, min(len(words) - 1, rng.randint(len(words) // 3, max(1, 2 * len(words) // 3))))
    return " ".join(words[:cut]).rstrip(".,!?")


def _entity(world: World, meta: dict[str, Any]) -> Country | Animal | Problem:
    if meta["subject_type"] == "country":
        return world.country(meta["subject"])
    if meta["subject_type"] == "animal":
        return world.animal(meta["subject"])
    return Problem(int(meta["a"]), meta["op"], int(meta["b"]))


def _answer(e: Country | Animal | Problem, attribute: str, value: str | None = None) -> str:
    if isinstance(e, Problem):
        return canonical_arith(e, value)
    return fact_answer(e, attribute, value)


def wrong_value(world: World, item: dict[str, Any], rng: random.Random, avoid: tuple[str, ...] = ()) -> str:
    """A plausible wrong value of the asked attribute, taken from the item's split."""
    meta = item["meta"]
    truth, attr = str(meta["value"]), meta["attribute"]
    if meta["subject_type"] == "arithmetic":
        options = [str(max(0, int(truth) + d)) for d in (-10, -3, -2, -1, 1, 2, 3, 10)]
    elif attr == "legs":
        options = ["0", "2", "4", "6", "8"]
    else:
        split = "train" if item.get("split") == "train" else "all"
        pool = world.countries_in(split) if meta["subject_type"] == "country" else world.animals_in(split)
        options = [e.get(attr) for e in pool]
    options = sorted({o for o in options if o != truth and o not in avoid})
    return pick(rng, options)


def _value_phrase(attr: str, value: str) -> str:
    if attr == "currency" or attr == "habitat":
        return f"the {value}"
    if attr in ("kind", "diet"):
        return f"{'an' if value[0] in 'aeiou' else 'a'} {value}"
    if attr == "legs":
        return legs_phrase(value)
    return value


def _fact_candidates(world: World, item: dict[str, Any], rng: random.Random) -> list[Candidate]:
    meta = item["meta"]
    e, attr, value = _entity(world, meta), meta["attribute"], str(meta["value"])
    out = [("terse", cap_first(_value_phrase(attr, value)) + "."),
           ("hedge", pick(rng, HEDGES).format(v=_value_phrase(attr, value))),
           ("wrong_entity", _answer(e, attr, wrong_value(world, item, rng)))]
    if isinstance(e, Problem):
        other = pick(rng, [op for op in ("plus", "minus", "times") if op != e.op and (op != "minus" or e.a >= e.b)])
        out.append(("wrong_attribute", canonical_arith(Problem(e.a, other, e.b))))
    else:
        attrs = COUNTRY_ATTRIBUTES if isinstance(e, Country) else ANIMAL_ATTRIBUTES
        out.append(("wrong_attribute", _answer(e, pick(rng, [x for x in attrs if x != attr]))))
    return out


def _premise_candidates(world: World, item: dict[str, Any], rng: random.Random) -> list[Candidate]:
    meta = item["meta"]
    e, attr, value, false = _entity(world, meta), meta["attribute"], str(meta["value"]), str(meta["false_value"])
    other_wrong = wrong_value(world, item, rng, avoid=(false,))
    denial = item["reference"].split(". ")[0] + "."
    return [("terse_correction", f"That is not true. It is {_value_phrase(attr, value)}."),
            ("accepts_premise", _answer(e, attr, false) + " " + pick(rng, [
                "It has been that way for a long time.", "Many people know this.", "That is a good question."])),
            ("wrong_correction", f"{denial} {_answer(e, attr, other_wrong)}"),
            ("ignores_premise", _answer(e, attr))]


def _instruction_candidates(world: World, item: dict[str, Any], rng: random.Random) -> list[Candidate]:
    meta = item["meta"]
    is_country = meta["subject_type"] == "country"
    answer = list(meta["answer"])
    split = "train" if item.get("split") == "train" else "all"
    pool = world.countries_in(split) if is_country else world.animals_in(split)
    invalid = [e.name for e in pool if e.name not in meta["valid"]]

    def names(xs: list[str]) -> str:
        return join_and(xs if is_country else [f"the {x}" for x in xs])

    wrong = answer[:-1] + [pick(rng, invalid)]
    out = [("terse", cap_first(names(answer)) + "."),
           ("wrong_entity", item["reference"].replace(names(answer), names(wrong)))]
    if len(answer) > 1:
        out.append(("too_few", cap_first(names(answer[:-1])) + "."))
    return out
