"""Byte-level BPE tokenizers trained with the ``tokenizers`` library, saved as HF fast tokenizers.

The saved tokenizer carries chat special tokens, a chat template (so ``apply_chat_template`` works in plain
``transformers``), a pad token distinct from EOS, and a mask token for masked-LM pre-training.
Assistant turns are wrapped in ``{% generation %}`` so ``return_assistant_tokens_mask`` marks them.
"""
from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

BOS = "<|endoftext|>"  # document separator, prepended to every pre-training document
PAD = "<|pad|>"
EOS = "<|end|>"  # end of a chat turn: generation stops here
MASK = "<|mask|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = [BOS, PAD, EOS, MASK, *ROLE_TOKENS]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['content'] + '<|end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def train_bpe(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   mask_token=MASK, additional_special_tokens=list(ROLE_TOKENS),
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1_000_000
    return fast


def token_byte_lengths(tokenizer) -> list[int]:
    """UTF-8 bytes each token id stands for (0 for special tokens), for bits-per-byte.

    Byte-level BPE maps every byte to one printable character, so a token's byte count is the length of its
    string form; other tokenizers fall back to decoding each id.
    """
    vocab_size = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    byte_level = isinstance(getattr(tokenizer, "backend_tokenizer", None) and
                            tokenizer.backend_tokenizer.pre_tokenizer, pre_tokenizers.ByteLevel) or \
        "ByteLevel" in str(getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", ""))
    lengths = []
    for i in range(vocab_size):
        if i in special:
            lengths.append(0)
            continue
        piece = tokenizer.convert_ids_to_tokens(i)
        if byte_level and piece is not None:
            lengths.append(len(piece))
        else:
            lengths.append(len(tokenizer.decode([i]).encode("utf-8")))
    return lengths
