"""Built-in reward functions, usable as ``function: lmforge.rewards.builtin:NAME`` (batch signature, see
:mod:`lmforge.rewards.functions`).

- :func:`world_correct`: 1.0 when the built-in world's checker passes the response, else 0.0;
- :func:`exact_answer`: 1.0 when the final answer equals ``meta["answer"]`` (numbers compared as numbers:
  ``#### 42``, ``42.0``, ``$42`` are the same; ``1,000`` is 1000), else 0.0 — GSM8K-style data;
- :func:`length_penalty`: ``-per_token * max(0, length - target)``, length in word-and-punctuation pieces.
"""
from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

# a number: thousands groups (1,000.5), a plain decimal (-3.25, .5) or a fraction (3/4); "$" and "%" around it
# are dropped by the caller's regex groups, a trailing sentence period is not part of it
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:/\d+)?|\.\d+)(?![\w])")
_PIECE = re.compile(r"\w+|[^\w\s]")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:|=)\s*(.+)", re.IGNORECASE)


# ---------------------------------------------------------------------------------------- world_correct

@lru_cache(maxsize=1)
def _world():
    # the checker reads facts of every entity (both splits), so the world's seed does not change its verdicts
    from ..world import World

    return World(0)


def world_correct(prompts: list, responses: list[str], meta: list[dict[str, Any] | None]) -> list[float]:
    """1.0 when :meth:`lmforge.world.World.check_answer` passes ``responses[i]`` for the world item ``meta[i]``
    (an item of ``World.eval_prompts``: it has ``kind`` and the truth in ``meta``); a response that runs on into
    an invented ``User:`` turn fails, as in evaluation."""
    world = _world()
    out = []
    for i, (r, m) in enumerate(zip(responses, meta)):
        if not isinstance(m, dict) or "kind" not in m or not isinstance(m.get("meta"), dict):
            got = "None" if m is None else f"keys {sorted(m)}" if isinstance(m, dict) else type(m).__name__
            raise ValueError(f"response {i}: meta is not a built-in world item (needs 'kind' and 'meta'; got {got})")
        out.append(1.0 if world.check_answer(m, r) else 0.0)
    return out


# ---------------------------------------------------------------------------------------- exact_answer

def parse_number(text: str) -> Fraction | None:
    """The value of ``text`` when it is one number (``"1,000"``, ``"42.0"``, ``"$5"``, ``"3/4"``, ``"-2."``)."""
    t = text.strip().rstrip(".").strip().replace("$", "").replace("%", "").strip()
    if not t or _NUMBER.fullmatch(t) is None:
        return None
    try:
        return Fraction(t.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def final_answer(text: str) -> str:
    """The answer part of a response: after the last ``####``, else in the last ``\\boxed{}``, else after the
    last "answer is" / "answer:", else the whole text."""
    if "####" in text:
        return text.rsplit("####", 1)[1].strip()
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    said = _ANSWER_IS.findall(text)
    return said[-1].strip() if said else text.strip()


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def answers_match(response: str, reference: str) -> bool:
    """A numeric reference matches the response's final answer's last number; another reference matches the
    final answer's text, compared case- and punctuation-blind."""
    ref = final_answer(reference)
    value = parse_number(ref)
    got = final_answer(response)
    if value is not None:
        numbers = _NUMBER.findall(got.replace("$", ""))
        return bool(numbers) and parse_number(numbers[-1]) == value
    return _plain(got) == _plain(ref) and bool(_plain(ref))


def exact_answer(prompts: list, responses: list[str], meta: list[dict[str, Any] | None],
                 key: str = "answer") -> list[float]:
    """1.0 when the response's final answer equals ``meta[i][key]`` (see :func:`answers_match`), else 0.0.
    A GSM8K reference ("... #### 72") is read after its ``####``."""
    out = []
    for i, (r, m) in enumerate(zip(responses, meta)):
        if not isinstance(m, dict) or key not in m:
            raise ValueError(f"response {i}: meta has no {key!r} (the prompt file needs an '{key}' field)")
        out.append(1.0 if answers_match(r, str(m[key])) else 0.0)
    return out


# ---------------------------------------------------------------------------------------- length_penalty

def length_pieces(text: str) -> int:
    """Words and punctuation marks: a tokenizer-free stand-in for a token count (a BPE of English gives ~1.3
    tokens per word, so this undercounts tokens by about that factor)."""
    return len(_PIECE.findall(text))


def length_penalty(prompts: list, responses: list[str], meta: list, target: int = 100,
                   per_token: float = 0.01) -> list[float]:
    """``-per_token * max(0, length_pieces(response) - target)``: zero up to ``target``, then linear."""
    return [-per_token * max(0, length_pieces(r) - target) for r in responses]
