"""The shared block finder and pad-id fallback (models/blocks.py, models/tokens.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, BertConfig, LlamaConfig

from lmforge.errors import InputError
from lmforge.models.blocks import transformer_blocks
from lmforge.models.tokens import ensure_pad_token, pad_id


def _llama(layers: int):
    cfg = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    return AutoModelForCausalLM.from_config(cfg)


def test_blocks_of_decoders_encoders_and_wrappers() -> None:
    lm = _llama(3)
    assert [id(b) for b in transformer_blocks(lm)] == [id(b) for b in lm.model.layers]
    one = _llama(1)  # a one-block model: found by its path (a bare scan wants lists of 2+)
    assert transformer_blocks(one) == [one.model.layers[0]]
    bert = AutoModelForSequenceClassification.from_config(
        BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32))
    assert transformer_blocks(bert) == list(bert.bert.encoder.layer)
    wrapper = torch.nn.Sequential(lm)  # no base_model_prefix: the scan finds the list inside
    assert transformer_blocks(wrapper) == list(lm.model.layers)
    assert transformer_blocks(torch.nn.Linear(2, 2)) == []


def test_pad_id_falls_back_to_eos_then_fallback_then_error() -> None:
    assert pad_id(SimpleNamespace(pad_token_id=3, eos_token_id=7)) == 3
    assert pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=7)) == 7
    assert pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=None), fallback=0) == 0
    with pytest.raises(InputError, match="neither a pad nor an EOS"):
        pad_id(SimpleNamespace(pad_token_id=None, eos_token_id=None))


def test_ensure_pad_token_sets_eos_as_pad() -> None:
    class Tok(SimpleNamespace):
        @property
        def pad_token_id(self):
            return 7 if self.pad_token == "</s>" else None

    tok = Tok(pad_token=None, eos_token="</s>", eos_token_id=7)
    assert ensure_pad_token(tok) == 7 and tok.pad_token == "</s>"
