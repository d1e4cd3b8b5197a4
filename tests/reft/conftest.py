"""A tiny chat LM for the recipe's end-to-end test: our byte-level BPE on word-problem text, a 2-block llama."""
from __future__ import annotations

from pathlib import Path

import pytest

from tiny_chat import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the models are tiny and the machine may be shared (tests/tiny_chat.py says why)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    import torch

    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.models.load import save_hf
    from lmforge.world import World
    from lmforge.world.word_problems import KINDS, word_problems

    items = word_problems(World(0), KINDS, n=140)
    tok = train_bpe([it["messages"][0]["content"] + "\n" + it["reference"] for it in items], vocab_size=500)
    torch.manual_seed(0)
    model = create_model(ModelConfig(depth=2, aspect=32, head_dim=32, max_seq_len=512), tok)
    return save_hf(model, tok, tmp_path_factory.mktemp("tiny") / "lm")
