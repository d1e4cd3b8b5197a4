"""Token ids every stage needs: which id pads a batch."""
from __future__ import annotations

from ..errors import InputError


def pad_id(tokenizer, fallback: int | None = None) -> int:
    """The tokenizer's pad id, else its EOS id (padding is masked out or cut away, so any real token will do,
    and EOS is the one every tokenizer here has), else ``fallback``; an error when there is none of them."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, fallback):
        if candidate is not None:
            return int(candidate)
    raise InputError("the tokenizer has neither a pad nor an EOS token; cannot batch", field="model.path")


def ensure_pad_token(tokenizer) -> int:
    """Give ``tokenizer`` a pad token (EOS doubles as pad when it has none) and return its id: for models that
    read something at the last non-pad token (sequence-classification heads), the pad must be a set token."""
    if tokenizer.pad_token_id is None:
        pad_id(tokenizer)  # the error when there is no EOS either
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.pad_token_id
