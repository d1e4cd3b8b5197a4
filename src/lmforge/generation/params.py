"""The one sampling schema every generating caller uses (``lmforge generate``, evaluation, RL rollouts, the server).

A config :class:`~lmforge.config.Section`, so a stage embeds it as its ``sampling:`` section (with its own
defaults) and the OpenAI request model maps its fields onto it.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from ..config import Section

MAX_STOP_STRINGS = 16


class SamplingParams(Section):
    max_new_tokens: int | None = Field(64, ge=1, description="the most tokens generated per completion; "
                                                              "null: up to the model's context")
    temperature: float = Field(0.0, ge=0, description="0: greedy (argmax); > 0: sample from softmax(logits / T)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: keep the smallest set with mass >= top_p")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens; 0: off")
    repetition_penalty: float = Field(1.0, gt=0, description="CTRL penalty (Keskar et al. 2019); 1: off")
    stop_token_ids: list[int] = Field(default_factory=list,
                                      description="token ids that end a completion, besides EOS/end-of-turn")
    stop: list[str] = Field(default_factory=list, description="strings that end a completion (cut before them)")
    n: int = Field(1, ge=1, description="completions per prompt")
    seed: int | None = Field(0, description="with step, rank and prompt index, seeds each completion; "
                                            "null: fresh randomness")
    logprobs: bool = Field(True, description="return each chosen token's log-probability")
    top_logprobs: int = Field(0, ge=0, le=20, description="also the k most likely tokens at each position")

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: list[str]) -> list[str]:
        if len(v) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        return [s for s in v if s]

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def batch_key(self) -> tuple:
        """Requests whose keys are equal share one forward pass: the logits processing is per call, while
        stops, lengths, seeds and ``n`` are per row."""
        return (self.temperature, self.top_p, self.top_k, self.repetition_penalty, self.top_logprobs)


def row_seed(seed: int, step: int, rank: int, index: int, sample: int) -> int:
    """A 63-bit seed for one completion, from (seed, step, rank, prompt index, sample index).

    numpy's ``SeedSequence`` hashes the tuple, so neighbouring tuples give unrelated streams: two data-parallel
    ranks or two RL steps never replay each other's noise, and the same tuple always replays the same noise.
    """
    words = [int(x) % 2**63 for x in (seed, step, rank, index, sample)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus the chat end-of-turn tokens the tokenizer knows (e.g. ``<|end|>``, ``<|im_end|>``)."""
    ids = []
    for tok in (tokenizer.eos_token, "<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids
