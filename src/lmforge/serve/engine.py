"""One local chat model behind a lock: messages in, completions (with per-token log-probabilities) out.

The HTTP layer (:mod:`.openai_server`) only translates requests; everything about the model lives here, so
streaming and request batching can grow in this class without touching the API schema.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jinja2 import TemplateError

from ..rollout.generate import stop_token_ids


class EngineError(ValueError):
    """A request the model cannot serve (the server answers 400 with this message)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop" | "length"
    tokens: int
    logprobs: list[TokenLogprob] | None = None


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0


class ChatEngine:
    """A Hugging Face causal LM with its tokenizer's chat template, generating one request at a time."""

    def __init__(self, model, tokenizer, name: str, default_max_tokens: int = 512):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{name}: the tokenizer has no chat template, so it cannot serve chat completions")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.created = int(time.time())
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.default_max_tokens = default_max_tokens
        self.stops = stop_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[0]
        self.device = next(model.parameters()).device
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name_or_path: str, *, dtype: str = "float32", device: str = "auto",
             served_name: str | None = None) -> ChatEngine:
        from ..models.load import load_causal_lm, load_tokenizer

        device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(name_or_path)
        model = load_causal_lm(name_or_path, dtype).to(device)
        return cls(model, tokenizer, served_name or default_name(name_or_path))

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        try:
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except (TemplateError, ValueError, TypeError, KeyError) as e:  # e.g. a template that rejects a role
            raise EngineError(f"the chat template cannot render these messages: {e}", "messages") from None
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def complete(self, messages: Sequence[dict[str, str]], params: SamplingParams) -> tuple[list[Completion], int]:
        """``params.n`` completions of the conversation, and the number of prompt tokens."""
        ids = self.prompt_ids(messages)
        room = self.context - len(ids)
        if room < 1:
            raise EngineError(f"the prompt has {len(ids)} tokens; this model's context is {self.context} tokens",
                              "messages")
        max_new = params.max_tokens if params.max_tokens is not None else min(room, self.default_max_tokens)
        if max_new > room:
            raise EngineError(f"max_tokens {max_new} + {len(ids)} prompt tokens exceed this model's context of "
                              f"{self.context} tokens", "max_tokens")
        sample = params.temperature > 0
        kwargs = {"max_new_tokens": max_new, "num_return_sequences": params.n, "eos_token_id": self.stops,
                  "pad_token_id": self.pad_id, "do_sample": sample, "return_dict_in_generate": True,
                  "output_logits": params.logprobs, "temperature": params.temperature if sample else None,
                  "top_p": params.top_p if sample else None, "top_k": None}
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        inputs = torch.tensor([ids], device=self.device)
        with self._lock:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), **kwargs)
        new = out.sequences[:, len(ids):].tolist()
        logps = (torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1).cpu()
                 if params.logprobs else None)  # [n, steps, vocab]: the model's own distribution
        return [self._finish(row, r, logps, params) for r, row in enumerate(new)], len(ids)

    def _finish(self, row: list[int], r: int, logps, params: SamplingParams) -> Completion:
        finish, cut = "length", len(row)
        for pos, t in enumerate(row):
            if t in self.stops:
                finish, cut = "stop", pos
                break
        row = row[:cut]
        pieces = [self.tokenizer.decode([t]) for t in row]
        text = self.tokenizer.decode(row, skip_special_tokens=True)
        if params.stop:
            hits = [text.find(s) for s in params.stop if s and s in text]
            if hits:
                end = min(hits)
                text, finish = text[:end], "stop"
                keep = 0  # the tokens wholly before the stop sequence
                while keep < len(row) and len(self.tokenizer.decode(row[:keep + 1], skip_special_tokens=True)) <= end:
                    keep += 1
                row, pieces = row[:keep], pieces[:keep]
        lps = None
        if logps is not None:
            lps = []
            for pos, (t, piece) in enumerate(zip(row, pieces)):
                dist = logps[r, pos]
                top = []
                if params.top_logprobs:
                    values, idx = dist.topk(params.top_logprobs)
                    top = [(self.tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, idx)]
                lps.append(TokenLogprob(piece, float(dist[t]), top))
        return Completion(text, finish, len(row), lps)


def default_name(name_or_path: str) -> str:
    """The served model id: a file's stem, a folder's name, or the hub id itself."""
    path = Path(name_or_path)
    if path.suffix.lower() == ".gguf":
        return path.stem
    if path.exists():
        return path.resolve().name
    return name_or_path
