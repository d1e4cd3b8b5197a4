"""What a backend hands back for one row, and the :class:`Completion` a caller gets (cut at its stop)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

STOP, LENGTH, STOP_STRING, CANCELLED = "stop", "length", "stop_string", "cancelled"


@dataclass
class Row:
    """One completion to generate: the prompt ids, its own seed, and where it may stop.

    ``on_token(token_id, logprob)`` streams each kept token as it is produced (stop tokens are not streamed;
    tokens of a stop string are, since the string is only recognised once complete).
    """
    prompt_ids: list[int]
    seed: int
    max_new_tokens: int
    stop_ids: frozenset[int]
    stop: tuple[str, ...] = ()
    on_token: Callable[[int, float], None] | None = None
    cancelled: threading.Event | None = None


@dataclass
class RowResult:
    """Every sampled token of a row (a stop token included) with its log-probability and top alternatives."""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    finish_reason: str = LENGTH


@dataclass
class Completion:
    """One finished completion.

    ``token_ids`` are exactly the sampled ids (training uses these, never a re-tokenisation of ``text``);
    ``logprobs[i]`` is log p(token_ids[i]) under the distribution it was sampled from (see
    :mod:`lmforge.generation.hf_backend`). ``finish_reason``: ``stop`` (a stop token, which is not included),
    ``length``, ``stop_string`` (``text`` is cut just before the string; ``token_ids`` keep every token that
    starts before it, so a token straddling the boundary stays) or ``cancelled``. ``stop_token`` /
    ``stop_logprob``: the stop token that ended a ``stop`` completion and its log-probability (RL trains on
    the end-of-turn token and can take the old log-probs from the sampler only with it); None otherwise.
    """
    token_ids: list[int]
    text: str
    finish_reason: str
    prompt_tokens: int
    logprobs: list[float]
    top_logprobs: list[list[tuple[int, float]]]
    stop_string: str | None = None
    stop_token: int | None = None
    stop_logprob: float | None = None

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def finished(self) -> bool:
        """Ended by the model (a stop token or stop string) rather than the length limit or a cancel."""
        return self.finish_reason in (STOP, STOP_STRING)

    def record(self) -> dict:
        """The JSON-friendly summary written to batch files and evaluation samples."""
        return {"text": self.text, "tokens": self.completion_tokens, "finished": self.finished,
                "finish_reason": self.finish_reason}


def finish(row: Row, res: RowResult, tokenizer) -> Completion:
    """Cut ``res`` at its first stop token, then at its first stop string, and decode the text from the ids."""
    ids, lps, top, reason = list(res.token_ids), list(res.logprobs), list(res.top), res.finish_reason
    stop_tok = stop_lp = None
    for pos, t in enumerate(ids):
        if t in row.stop_ids:
            stop_tok, stop_lp = t, (lps[pos] if pos < len(lps) else None)
            ids, lps, top, reason = ids[:pos], lps[:pos], top[:pos], STOP
            break
    text = tokenizer.decode(ids, skip_special_tokens=True)
    hit = None
    if row.stop:
        found = [(text.find(s), s) for s in row.stop if s in text]
        if found:
            end, hit = min(found)
            text, reason = text[:end], STOP_STRING
            keep = 0  # tokens that start before the stop string: the prefix before them decodes to < end chars
            while keep < len(ids) and len(tokenizer.decode(ids[:keep], skip_special_tokens=True)) < end:
                keep += 1
            ids, lps, top = ids[:keep], lps[:keep], top[:keep]
            stop_tok = stop_lp = None
    return Completion(ids, text, reason, len(row.prompt_ids), lps, top, hit, stop_tok, stop_lp)


def stop_string_hit(tokenizer, ids: list[int], stops: tuple[str, ...]) -> bool:
    """Whether the decoded tail of ``ids`` contains a stop string (checked each step, so only the tail that
    could hold a newly completed string is decoded: every token decodes to at least one character, and a few
    more cover byte-level tokens that decode to a partial character)."""
    longest = max(len(s) for s in stops)
    tail = tokenizer.decode(ids[-(longest + 4):], skip_special_tokens=True)
    return any(s in tail for s in stops)
