"""Scoring (prompt, response) text with a saved reward model: the one path ``lmforge rm score`` and the RL rewards
share. Text is encoded with the reward model's own tokenizer and input format (:func:`lmforge.data.
reward_encode.encode`, exactly as in training), then scored in length-sorted batches
(:func:`lmforge.models.reward_scores.score_encoded`, which also reads a generative head)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.reward_encode import Encoded, encode
from .reward_scores import score_encoded


def encode_texts(tokenizer, meta, prompts: Sequence[list[dict[str, str]]], responses: Sequence[str]
                 ) -> tuple[list[Encoded], int]:
    """(encoded rows, how many were truncated to ``meta.max_length``) in the model's ``meta.input_format``."""
    rows = [encode(tokenizer, meta.input_format, p, r, meta.max_length,
                   getattr(meta, "suffix_ids", None)) for p, r in zip(prompts, responses)]
    return rows, sum(e.truncated for e in rows)


def score_texts(model, tokenizer, meta, prompts: Sequence[list[dict[str, str]]], responses: Sequence[str],
                batch_size: int = 32, chunk_tokens: int | None = None) -> tuple[torch.Tensor, int]:
    """(``[N, heads]`` scores on the CPU, column 0 the reward; the number of truncated inputs)."""
    rows, truncated = encode_texts(tokenizer, meta, prompts, responses)
    return score_encoded(model, rows, tokenizer.pad_token_id, batch_size, chunk_tokens), truncated
