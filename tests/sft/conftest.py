"""Shared SFT fixtures: a small world tokenizer and a tiny random Llama saved as a plain HF folder (session-scoped)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.data.chat import Example
from lmforge.world import World

MULTI_TURN = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 plus 3?"},
              {"role": "assistant", "content": "2 plus 3 is 5."}, {"role": "user", "content": "And 4 plus 4?"},
              {"role": "assistant", "content": "4 plus 4 is 8."}]


@pytest.fixture(scope="session")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory, world: World) -> Path:
    """A byte-level BPE trained on a slice of the world's corpus (our chat template, pad != EOS)."""
    from lmforge.data.tokenizer import train_bpe

    out = tmp_path_factory.mktemp("tok")
    train_bpe(world.pretrain_corpus(seed=0, n_docs=300), vocab_size=600).save_pretrained(out)
    return out


@pytest.fixture
def tokenizer(tok_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tok_dir: Path) -> Path:
    """A random 2-block Llama (width 64) with the world tokenizer, saved like a pre-training run's final/."""
    from transformers import AutoTokenizer

    from lmforge.models.factory import ModelConfig, create_model

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=512), tok)
    out = tmp_path_factory.mktemp("tiny") / "final"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def example(messages, line: int = 1) -> Example:
    return Example("mem.jsonl", line, messages=messages)
