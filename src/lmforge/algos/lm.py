"""Language-modelling losses as pure functions of tensors."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100


def token_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood and the number of scored tokens.

    ``labels`` are already shifted (``labels[t]`` is the target for ``logits[t]``); positions equal to
    ``IGNORE`` (-100) are skipped. The sum (not the mean) lets the engine normalise over a whole optimizer
    step: L = -(1/N) Σ_t log p(x_{t+1} | x_≤t)  (Radford et al. 2018, eq. 1), N counted across all
    micro-batches and processes.
    """
    flat = labels.reshape(-1)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), flat, ignore_index=IGNORE, reduction="sum")
    return loss, (flat != IGNORE).sum()


def bits_per_byte(nll_sum_nats: float, n_bytes: int) -> float:
    """Tokenizer-independent compression: total nats / (ln 2 x UTF-8 bytes of the scored text)."""
    return nll_sum_nats / (math.log(2) * max(n_bytes, 1))


def mask_tokens(input_ids: torch.Tensor, mask_id: int, vocab_size: int, special_ids: list[int],
                generator: torch.Generator | None = None, mask_prob: float = 0.15
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (Devlin et al. 2019, §3.1): pick ``mask_prob`` of the non-special tokens as targets;
    of those, 80% become [MASK], 10% a random token, 10% stay. Returns (corrupted ids, labels with -100
    everywhere except the targets)."""
    special = torch.isin(input_ids, torch.tensor(special_ids, dtype=input_ids.dtype))
    probs = torch.full(input_ids.shape, mask_prob).masked_fill(special, 0.0)
    targets = torch.bernoulli(probs, generator=generator).bool()
    labels = torch.where(targets, input_ids, torch.full_like(input_ids, IGNORE))
    corrupted = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted[targets & (roll < 0.8)] = mask_id
    random_pos = targets & (roll >= 0.8) & (roll < 0.9)
    corrupted[random_pos] = torch.randint(vocab_size, input_ids.shape, generator=generator)[random_pos]
    return corrupted, labels
