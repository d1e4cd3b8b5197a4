"""One local chat model for the server: messages in, completions (with per-token log-probabilities) out.

The HTTP layer (:mod:`.openai_server`) only translates requests; the chat template, the context checks and the
OpenAI view of a completion live here, and the generation itself is the shared engine's
(:class:`lmforge.generation.GenerationEngine`): concurrent requests with compatible settings are batched in a
short window, each completion has its own seed, and the log-probabilities are those of the distribution the
token was sampled from (after temperature and top-p; the model's own for greedy requests).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jinja2 import TemplateError

from ..generation import Completion as Generated
from ..generation import GenerationEngine, SamplingParams
from ..generation.engine import Request
from ..generation.outputs import LENGTH
from .metrics import Metrics

__all__ = ["Admission", "Busy", "ChatEngine", "Completion", "EngineError", "SamplingParams", "TokenLogprob",
           "default_name"]

# OpenAI reports a token outside the sampled support (top-p / top-k tail) as -9999.0; JSON has no -inf
FLOOR_LOGPROB = -9999.0


class EngineError(ValueError):
    """A request the model cannot serve (the server answers 400 with this message)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


class Busy(RuntimeError):
    """Every request slot is taken (the server answers 429)."""


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Completion:
    """A completion as the OpenAI API reports it (``finish_reason`` is ``stop`` or ``length``)."""
    text: str
    finish_reason: str
    tokens: int
    logprobs: list[TokenLogprob] | None = None


class Admission:
    """The request slots and counters of one server, shared by every model it serves (so ``max_queue`` and
    ``/metrics`` are the server's, however many adapters it serves)."""

    def __init__(self, max_queue: int = 64):
        self.max_queue = max_queue
        self.in_flight = 0
        self._slots = threading.Lock()
        self.metrics = Metrics()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one request slot for the block; :class:`Busy` when all ``max_queue`` are taken."""
        with self._slots:
            if self.in_flight >= self.max_queue:
                self.metrics.count("rejected")
                raise Busy(f"the server is busy ({self.max_queue} requests in progress); retry later")
            self.in_flight += 1
        self.metrics.count("requests")
        try:
            yield
        finally:
            with self._slots:
                self.in_flight -= 1


class ChatEngine:
    """A Hugging Face causal LM with its tokenizer's chat template, on the shared generation engine."""

    def __init__(self, model, tokenizer, name: str, default_max_tokens: int = 512, batch_size: int = 32,
                 window_s: float = 0.005, max_queue: int = 64, request_timeout_s: float = 600.0,
                 admission: Admission | None = None):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{name}: the tokenizer has no chat template, so it cannot serve chat completions")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.created = int(time.time())
        self.context = getattr(model.config, "max_position_embeddings", None) or 2048
        self.default_max_tokens = default_max_tokens
        self.engine = GenerationEngine(model, tokenizer, batch_size=batch_size, window_s=window_s)
        # a request holds a slot from admission to its end; beyond max_queue slots new requests get 429, so
        # a burst waits in a bounded queue instead of piling up memory and latency. Models served side by side
        # (adapters over one base) share one Admission: the limit is the server's
        self.admission = admission if admission is not None else Admission(max_queue)
        self.request_timeout_s = request_timeout_s

    @property
    def max_queue(self) -> int:
        return self.admission.max_queue

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    @property
    def metrics(self) -> Metrics:
        return self.admission.metrics

    def slot(self):
        """Hold one request slot (:meth:`Admission.slot`)."""
        return self.admission.slot()

    @property
    def queued(self) -> int:
        """Requests waiting for the generation worker (not yet in a batch)."""
        return self.engine.pending

    @classmethod
    def load(cls, name_or_path: str, *, dtype: str = "float32", device: str = "auto",
             served_name: str | None = None, **options) -> ChatEngine:
        from ..models.peft import load_any

        device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_any(name_or_path, dtype)  # an adapter folder is merged over its base
        model = model.to(device)
        return cls(model, tokenizer, served_name or default_name(name_or_path), **options)

    def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        try:
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except (TemplateError, ValueError, TypeError, KeyError) as e:  # e.g. a template that rejects a role
            raise EngineError(f"the chat template cannot render these messages: {e}", "messages") from None
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, text: str) -> list[int]:
        """A plain prompt (``/v1/completions``): the text's ids, no chat template."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def check(self, prompts: Sequence[Sequence[int]], params: SamplingParams, param: str = "messages"
              ) -> SamplingParams:
        """``params`` with ``max_new_tokens`` set, or :class:`EngineError` when a prompt cannot fit the context.

        ``params.max_new_tokens`` None means as many as fit, at most ``default_max_tokens``."""
        longest = max(len(ids) for ids in prompts)
        room = self.context - longest
        if room < 1:
            raise EngineError(f"the prompt has {longest} tokens; this model's context is {self.context} tokens",
                              param)
        max_new = params.max_new_tokens if params.max_new_tokens is not None else min(room, self.default_max_tokens)
        if max_new > room:
            raise EngineError(f"max_tokens {max_new} + {longest} prompt tokens exceed this model's context of "
                              f"{self.context} tokens", "max_tokens")
        return params.model_copy(update={"max_new_tokens": max_new})

    def submit(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> Request:
        """Queue checked prompts on the generation engine (batched with whatever else is queued)."""
        return self.engine.submit([list(p) for p in prompts], params)

    def complete(self, messages: Sequence[dict[str, str]], params: SamplingParams) -> tuple[list[Completion], int]:
        """``params.n`` completions of the conversation, and the number of prompt tokens (blocking; no slot)."""
        ids = self.prompt_ids(messages)
        params = self.check([ids], params)
        (group,) = self.submit([ids], params).result()
        return [self.view(c, params) for c in group], len(ids)

    def view(self, c: Generated, params: SamplingParams) -> Completion:
        """The OpenAI view: token pieces, floored log-probabilities, ``stop`` for a stop string."""
        finish = LENGTH if c.finish_reason == LENGTH else "stop"
        lps = None
        if params.logprobs:
            piece = self.tokenizer.decode
            lps = [TokenLogprob(piece([t]), max(lp, FLOOR_LOGPROB),
                                [(piece([i]), max(v, FLOOR_LOGPROB)) for i, v in top])
                   for t, lp, top in zip(c.token_ids, c.logprobs, c.top_logprobs or [[]] * len(c.token_ids))]
        return Completion(c.text, finish, c.completion_tokens, lps)

    def close(self) -> None:
        self.engine.close()


def default_name(name_or_path: str) -> str:
    """The served model id: a file's stem, a folder's name, or the hub id itself."""
    path = Path(name_or_path)
    if path.suffix.lower() == ".gguf":
        return path.stem
    if path.exists():
        return path.resolve().name
    return name_or_path
