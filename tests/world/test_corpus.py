"""The pre-training corpus: size, speed, coverage of every fact, and no question/answer or chat form of facts."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from lmforge.world import World
from lmforge.world.phrasings import canonical_animal
from lmforge.world.stories import CHAT_PAIRS, IRRELEVANT, story_doc
from lmforge.world.text import rng_for

from .conftest import entity_names


def test_default_size(corpus: list[str]) -> None:
    # speed is not asserted here (a timed test fails on a loaded machine); the demo's stage seconds report it
    docs = corpus
    chars = sum(map(len, docs))
    assert 5_000_000 <= chars <= 6_000_000, chars
    assert all(isinstance(d, str) and d.strip() for d in docs)
    assert not any("<|" in d for d in docs), "documents are plain text, no special tokens"


def test_every_fact_in_canonical_form(world: World, corpus: list[str]) -> None:
    text = "\n".join(corpus)
    missing = []
    for c in world.countries:
        for sentence in (f"The capital of {c.name} is {c.capital}.", f"The continent of {c.name} is {c.continent}.",
                         f"The official language of {c.name} is {c.language}.",
                         f"The currency of {c.name} is the {c.currency}."):
            if sentence not in text:
                missing.append(sentence)
    for a in world.animals:
        missing += [s for s in (canonical_animal(a, attr) for attr in ("kind", "diet", "habitat", "legs"))
                    if s not in text]
    assert not missing, missing[:5]


def test_facts_are_repeated_in_many_phrasings(world: World, corpus: list[str]) -> None:
    """Fact learning needs repetition: each capital is stated in several different sentence forms."""
    text = "\n".join(corpus)
    for c in world.countries[:20]:
        forms = {f"The capital of {c.name} is {c.capital}.", f"{c.capital} is the capital of {c.name}.",
                 f"Its capital is {c.capital}.", f"The capital city of {c.name} is {c.capital}.",
                 f"{c.capital} is the capital city of {c.name}."}
        assert sum(f in text for f in forms) >= 3, c.name
        assert text.count(c.capital) >= 15, c.name


def test_mix_contains_every_family(corpus: list[str]) -> None:
    assert sum("User:" in d for d in corpus) > 200
    assert sum(d.startswith("Once upon a time") for d in corpus) > 200
    assert sum(bool(re.search(r"^\d+ plus \d+ is \d+\.$", d, re.MULTILINE)) for d in corpus) > 100
    assert sum(" include " in d or " are all in " in d for d in corpus) > 100
    assert sum(", but " in d or "both" in d for d in corpus) > 100
    assert sum("Its capital" in d for d in corpus) > 100


def test_chats_ramble_and_hold_no_facts(world: World, corpus: list[str]) -> None:
    chats = [d for d in corpus if "User:" in d]
    for d in chats:
        assert d.startswith("User: ")
        assert d.count("User:") >= 3, "raw chats run on past the first answer"
        assert entity_names(world, d) == set(), d[:200]
        assert world.lexicon.claims(d) == []


def test_no_question_form_of_any_fact(world: World, corpus: list[str]) -> None:
    """Facts appear only as statements: no document that names a country, capital or animal asks anything."""
    for d in corpus:
        if "?" in d:
            assert entity_names(world, d) == set(), d[:200]


def test_fact_free_texts_are_fact_free(world: World) -> None:
    rng = rng_for("test")
    texts = [story_doc(rng) for _ in range(200)] + IRRELEVANT + [u + " " + a for u, a in CHAT_PAIRS]
    for t in texts:
        assert world.lexicon.find(t) == [], t


def test_deterministic_and_seeded(world: World) -> None:
    a = world.pretrain_corpus(seed=3, n_docs=150)
    assert a == world.pretrain_corpus(seed=3, n_docs=150)
    assert a == World(0).pretrain_corpus(seed=3, n_docs=150)
    assert len(a) == 150
    assert a != world.pretrain_corpus(seed=4, n_docs=150)
    assert a != World(1).pretrain_corpus(seed=3, n_docs=150)


_DIGEST_SCRIPT = """
import hashlib, json, random
from lmforge.world import World, SimulatedLabeler
w = World(0)
parts = [w.pretrain_corpus(n_docs=60), w.sft_examples(n=50), w.safety_examples(n=30), w.eval_prompts(n=40)]
items = w.eval_prompts("train", n=12, seed=5)
lab = SimulatedLabeler(w, noise=0.8, seed=2)
parts.append([lab.label(it, w.candidate_responses(it, 5, random.Random(7))) for it in items])
print(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest())
"""


def test_identical_across_processes() -> None:
    """Outputs must not depend on per-process hash randomisation (no hash() or set order in choices)."""
    procs = [subprocess.Popen([sys.executable, "-c", _DIGEST_SCRIPT], env={**os.environ, "PYTHONHASHSEED": h},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in ("1", "987")]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    digests = {out.strip() for out, _ in outs}
    assert len(digests) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", digests.pop())
