"""Fixtures for the DPO tests: a tiny causal LM with a chat template and preference files with a clear signal."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tiny_chat import one_torch_thread

GOOD = ["sure", "here", "is", "the", "answer", "clearly", "correct", "helpful"]
BAD = ["no", "wrong", "bad", "nonsense", "rude", "broken"]
TOPICS = ["cats", "rivers", "maths", "bread", "stars", "trains", "music", "trees", "boats", "snow"]


def words(rng: random.Random, pool: list[str], n: int = 5) -> str:
    return " ".join(rng.choice(pool) for _ in range(n)) + "."


def records(n: int, seed: int = 0, rankings: bool = True) -> list[dict]:
    """Pairs (and every third prompt a 3-way ranking): good answers use GOOD words, bad ones BAD words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p = f"Tell me about {TOPICS[i % len(TOPICS)]} number {i}."
        if rankings and i % 3 == 2:
            rows.append({"type": "ranking", "prompt": p, "ranking": [1, 2, 0],
                         "responses": [words(rng, BAD), words(rng, GOOD), words(rng, GOOD, 2) + " " + words(rng, BAD, 2)]})
        else:
            rows.append({"type": "pair", "prompt": p, "chosen": words(rng, GOOD), "rejected": words(rng, BAD)})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the models are tiny and the machine may be shared (tests/tiny_chat.py says why)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A 2-block llama (width 64) with a byte-level BPE (lmforge chat template) on the fixtures' words."""
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    rng = random.Random(0)
    texts = [f"Tell me about {TOPICS[i % 10]} number {i}. " + words(rng, GOOD) + " " + words(rng, BAD)
             for i in range(300)]
    tok = train_bpe(texts, vocab_size=400)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=256), tok)
    return save_hf(model, tok, tmp_path_factory.mktemp("tiny") / "lm")


@pytest.fixture
def pref_files(tmp_path: Path) -> tuple[Path, Path]:
    return (write_jsonl(tmp_path / "train.jsonl", records(36, seed=0)),
            write_jsonl(tmp_path / "eval.jsonl", records(12, seed=1, rankings=False)))
