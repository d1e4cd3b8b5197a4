"""Shared fixtures for the evaluation tests: one world, its tokenizer and a tiny random Llama (session-scoped)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.world import World


@pytest.fixture(scope="session")
def world() -> World:
    return World(seed=0)


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory, world: World) -> Path:
    """A byte-level BPE trained on a slice of the world's corpus (our chat template, pad != EOS)."""
    from lmforge.data.tokenizer import train_bpe

    out = tmp_path_factory.mktemp("eval-tok")
    train_bpe(world.pretrain_corpus(seed=0, n_docs=200), vocab_size=400).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tok_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


def tiny_lm(tokenizer, seed: int = 0):
    """A random 1-block Llama (width 32) over the world tokenizer."""
    from lmforge.models.factory import ModelConfig, create_model

    torch.manual_seed(seed)
    return create_model(ModelConfig(depth=1, aspect=32, head_dim=16, max_seq_len=256), tokenizer).eval()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tokenizer):
    """:func:`tiny_lm` saved as a plain Hugging Face folder (for the CLI tests)."""
    from lmforge.models.load import save_hf

    path = tmp_path_factory.mktemp("eval-model")
    save_hf(tiny_lm(tokenizer), tokenizer, path)
    return path
