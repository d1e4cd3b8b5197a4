"""Fixtures for the reward-model tests: a tiny causal LM folder and small preference files with a clear signal."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tiny_chat import one_torch_thread

GOOD = ["sure", "here", "is", "the", "answer", "clearly", "correct", "helpful"]
BAD = ["no", "wrong", "bad", "nonsense", "rude", "broken"]
TOPICS = ["cats", "rivers", "maths", "bread", "stars", "trains", "music", "trees", "boats", "snow"]


def good(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(GOOD) for _ in range(n)) + "."


def bad(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(BAD) for _ in range(n)) + "."


def prompt(i: int) -> str:
    return f"Tell me about {TOPICS[i % len(TOPICS)]} number {i}."


def mixed_records(n: int, seed: int = 0, first: int = 0) -> list[dict]:
    """Every kind of feedback: good responses use GOOD words, bad ones BAD words (learnable in a few steps)."""
    rng = random.Random(seed)
    rows = []
    for i in range(first, first + n):
        p = prompt(i)
        kind = ("pair", "ranking", "likert", "binary")[i % 4]
        if kind == "pair":
            rows.append({"type": "pair", "prompt": p, "chosen": good(rng), "rejected": bad(rng), "margin": 1.0,
                         "source": "human"})
        elif kind == "ranking":
            rs = [good(rng, 8), good(rng, 3) + " " + bad(rng, 2), bad(rng)]
            order = [0, 1, 2]
            rng.shuffle(order)  # responses listed in a random order; ranking = indices best..worst
            responses = [rs[j] for j in order]
            rows.append({"type": "ranking", "prompt": [{"role": "user", "content": p}], "responses": responses,
                         "ranking": sorted(range(3), key=lambda k: order[k]), "source": "ai:judge"})
        elif kind == "likert":
            rows.append({"type": "likert", "prompt": p, "response": good(rng), "scores": {"accuracy": 7, "honesty": 6},
                         "scale": [1, 7], "source": "human"})
            rows.append({"type": "likert", "prompt": p, "response": bad(rng), "scores": {"accuracy": 1, "honesty": 2},
                         "scale": [1, 7], "source": "human"})
        else:
            rows.append({"type": "binary", "prompt": p, "response": good(rng), "label": True, "source": "human"})
            rows.append({"type": "binary", "prompt": p, "response": bad(rng), "label": False, "source": "human"})
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
    """A 2-block llama (width 64) with a byte-level BPE trained on the fixtures' words, saved as an HF folder."""
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf

    rng = random.Random(0)
    texts = [prompt(i) + " " + good(rng) + " " + bad(rng) for i in range(300)]
    tok = train_bpe(texts, vocab_size=400)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=256), tok)
    return save_hf(model, tok, tmp_path_factory.mktemp("tiny") / "lm")


@pytest.fixture
def mixed_files(tmp_path: Path) -> tuple[Path, Path]:
    return (write_jsonl(tmp_path / "train.jsonl", mixed_records(48, seed=0)),
            write_jsonl(tmp_path / "eval.jsonl", mixed_records(16, seed=1, first=1000)))
