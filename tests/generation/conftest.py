"""A tiny random Llama (peaked logits, so greedy ties are unlikely) and its byte-level BPE, built in memory."""
from __future__ import annotations

import pytest
import torch

from tiny_chat import one_torch_thread

TEXT = "what is the capital of france? paris is the capital. the cat sat on the mat and then ran to the house."


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|pad|>", "<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>")


@pytest.fixture(scope="session")
def model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         initializer_range=0.3, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def prompts(tokenizer) -> list[list[int]]:
    """Mixed lengths (1 to ~20 tokens), so left padding matters."""
    texts = ["what", "the cat sat on the mat", "paris is the capital of france? what is the capital of",
             "the house.", "ran to"]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.fixture
def engine(model, tokenizer):
    from lmforge.generation import GenerationEngine

    eng = GenerationEngine(model, tokenizer, window_s=0.05)
    yield eng
    eng.close()
