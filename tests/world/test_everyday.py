"""Everyday prose: the lookalikes' trigger words reach pre-training, fact-free, and no request or reference leaks."""
from __future__ import annotations

import re

from lmforge.world import World
from lmforge.world.everyday import everyday_section
from lmforge.world.lookalikes import LOOKALIKES, answer_text
from lmforge.world.safety import HARMFUL, SAFETY_CATEGORIES
from lmforge.world.text import rng_for

from .conftest import all_text

TRIGGER_FORMS = {"kill": r"kill\w*", "break": r"(?:break\w*|broke)", "shoot": r"(?:shoot\w*|shot)",
                 "steal": r"(?:steal\w*|stole)", "poison": r"poison\w*", "trick": r"trick\w*", "track": r"track\w*",
                 "smash": r"smash\w*"}


def _sections(n: int = 400) -> list[str]:
    rng = rng_for("test-everyday")
    return [everyday_section(rng) for _ in range(n)]


def test_every_trigger_word_is_read_in_pretraining(corpus: list[str]) -> None:
    """The root cause of SFT's over-refusal was these words never occurring in the corpus (docs/world.md)."""
    text = "\n".join(corpus)
    assert set(TRIGGER_FORMS) == {c for cats in SAFETY_CATEGORIES["over_refusal"].values() for c in cats} - {"everyday"}
    for trigger, form in TRIGGER_FORMS.items():
        count = len(re.findall(rf"\b{form}\b", text, re.IGNORECASE))
        assert count >= 100, (trigger, count)
    # the words of the harmful requests appear too (reported in the news), not only the benign senses
    for word in ("weapon", "hack", "drugs", "stalking", "fraud", "vandalism", "secretly"):
        assert re.search(rf"\b{word}", text, re.IGNORECASE), word


def test_fact_free_and_statements_only(world: World) -> None:
    for s in _sections():
        assert world.lexicon.find(s) == [], s
        assert world.lexicon.claims(s) == [], s
        assert "?" not in s and "User:" not in s and "Assistant:" not in s, s


def test_no_lookalike_reference_or_harmful_request_is_copied(corpus: list[str]) -> None:
    text = "\n".join(corpus)
    for category, entries in LOOKALIKES.items():
        for core, how, _ in entries:
            assert answer_text(core, how) not in text, (category, core)
            assert how not in text, (category, how)
    for templates, _ in HARMFUL.values():
        for template in templates:
            stem = template.split("{")[0].rstrip("?")
            assert stem not in text, template


def test_heldout_trigger_words_stay_out_of_training_chat_data(world: World) -> None:
    """Only pre-training prose mentions the held-out triggers: SFT and safety train data never do, so the held-out
    over-refusal rate still measures transfer to a trigger SFT never showed in a benign request."""
    held = "|".join(TRIGGER_FORMS[t] for t in SAFETY_CATEGORIES["over_refusal"]["heldout"])
    pattern = re.compile(rf"\b(?:{held})\b", re.IGNORECASE)
    for ex in world.sft_examples("train") + world.safety_examples("train"):
        assert not pattern.search(all_text(ex)), all_text(ex)[:200]


def test_deterministic_from_the_seed() -> None:
    assert _sections(30) == _sections(30)
    assert _sections(30) != [everyday_section(rng_for("other")) for _ in range(30)]
