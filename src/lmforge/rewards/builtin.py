"""Built-in reward functions, usable as ``function: lmforge.rewards.builtin:NAME`` (batch signature, see
:mod:`lmforge.rewards.functions`).

- :func:`world_correct`: 1.0 when the built-in world's checker passes the response, else 0.0;
- :func:`exact_answer`: 1.0 when the final answer equals ``meta["answer"]`` (numbers compared as numbers:
  ``#### 42``, ``42.0``, ``$42`` are the same; ``1,000`` is 1000), else 0.0 — GSM8K-style data;
- :func:`length_penalty`: ``-per_token * max(0, length - target)``, length in word-and-punctuation pieces;
- :func:`answer_format`: 1.0 when the response's last line states the answer in the format ``#### N``;
- :func:`refusal`: a rule reward for safety prompts, 1.0 when the response refuses (``refuse: true``) or answers
  (``refuse: false``) as the prompt calls for: one term per prompt tag, routed by ``when`` (docs/rewards.md).

:func:`exact_answer` takes ``partial`` for partial credit (a wrong answer scores ``partial`` x the share of the
reference solution's intermediate results the response reaches); :func:`answer_counts` tallies correct, wrong
and unparsable answers for evaluation.
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


def _numbers(text: str) -> list[str]:
    return _NUMBER.findall(text.replace("$", ""))


def answer_value(text: str) -> Fraction | None:
    """The number a response gives as its answer, None when it gives none (unparsable).

    After ``####`` or "answer is": the first number of that line's first sentence, read after its last ``=``
    ("#### 5 + 3 = 8" is 8), so units and trailing text ("#### 1,200 apples. Next, ...") do not count; in a
    ``\\boxed{}``: its last number; with no marker: the text's last number."""
    if "####" in text:
        part, anchored = text.rsplit("####", 1)[1].strip().split("\n", 1)[0], True
    elif _BOXED.findall(text):
        part, anchored = _BOXED.findall(text)[-1], False
    elif _ANSWER_IS.findall(text):
        part, anchored = _ANSWER_IS.findall(text)[-1], True
    else:
        part, anchored = text, False
    if anchored:
        part = re.split(r"\.(?=\s|$)|[;!?]", part, maxsplit=1)[0].rsplit("=", 1)[-1]
    numbers = _numbers(part)
    if not numbers:
        return None
    return parse_number(numbers[0] if anchored else numbers[-1])


def answers_match(response: str, reference: str) -> bool:
    """A numeric reference matches the response's :func:`answer_value`; another reference matches the final
    answer's text, compared case- and punctuation-blind."""
    ref = final_answer(reference)
    value = parse_number(ref)
    if value is not None:
        return answer_value(response) == value
    return _plain(final_answer(response)) == _plain(ref) and bool(_plain(ref))


def _results(text: str) -> list[Fraction]:
    """The number right after each ``=`` (GSM8K's ``<<48/2=24>>`` annotations included), in order, once each."""
    out: list[Fraction] = []
    for m in re.finditer(r"=\s*\$?(-?[\d,]*\.?\d+(?:/\d+)?)", text):
        v = parse_number(m[1])
        if v is not None and v not in out:
            out.append(v)
    return out


def intermediate_results(solution: str) -> list[Fraction]:
    """The values a worked solution computes on its way (each ``= v`` before its ``####`` line), the final
    answer excluded."""
    final = parse_number(final_answer(solution))
    return [v for v in _results(solution.rsplit("####", 1)[0]) if v != final]


def partial_credit(response: str, solution: str) -> float:
    """The share of ``solution``'s :func:`intermediate_results` that the response also computes (states
    after an ``=``); 0.0 when the solution shows none. Operands do not count: "3 x 4" does not reach 4."""
    wanted = intermediate_results(solution)
    if not wanted:
        return 0.0
    got = set(_results(response))
    return sum(v in got for v in wanted) / len(wanted)


def exact_answer(prompts: list, responses: list[str], meta: list[dict[str, Any] | None],
                 key: str = "answer", partial: float = 0.0, solution_key: str = "reference") -> list[float]:
    """1.0 when the response's final answer equals ``meta[i][key]`` (see :func:`answers_match`), else 0.0.
    A GSM8K reference ("... #### 72") is read after its ``####``.

    ``partial`` > 0: a wrong answer instead scores ``partial x`` :func:`partial_credit` against the worked
    solution (``meta[i][key]`` when it holds one, as GSM8K's ``answer`` does, else ``meta[i][solution_key]``),
    so a response that gets some steps right ranks above one that gets none."""
    out = []
    for i, (r, m) in enumerate(zip(responses, meta)):
        if not isinstance(m, dict) or key not in m:
            raise ValueError(f"response {i}: meta has no {key!r} (the prompt file needs an '{key}' field)")
        if answers_match(r, str(m[key])):
            out.append(1.0)
        elif partial:
            solution = str(m[key]) if "####" in str(m[key]) else str(m.get(solution_key) or "")
            out.append(partial * partial_credit(r, solution))
        else:
            out.append(0.0)
    return out


_FORMAT = re.compile(r"####[ \t]*\$?(-?[\d,]*\.?\d+(?:/\d+)?)[ \t]*")


def format_ok(text: str) -> bool:
    """Whether the last non-empty line is exactly the stated answer format ``#### N`` (N one number)."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    m = _FORMAT.fullmatch(lines[-1]) if lines else None
    return m is not None and parse_number(m[1]) is not None


def answer_format(prompts: list, responses: list[str], meta: list) -> list[float]:
    """1.0 when the response ends with the answer line ``#### N`` (see :func:`format_ok`), else 0.0: a format
    reward to add with a small weight beside :func:`exact_answer`."""
    return [1.0 if format_ok(r) else 0.0 for r in responses]


def answer_counts(responses: list[str], references: list[str]) -> dict[str, int]:
    """``{"n", "correct", "wrong", "unparsable"}``: unparsable is a response with no number as its answer (a
    numeric reference) - the count that tells a format problem from a reasoning one."""
    out = {"n": len(responses), "correct": 0, "wrong": 0, "unparsable": 0}
    for r, ref in zip(responses, references, strict=True):
        if answers_match(r, ref):
            out["correct"] += 1
        elif parse_number(final_answer(ref)) is not None and answer_value(r) is None:
            out["unparsable"] += 1
        else:
            out["wrong"] += 1
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


# ---------------------------------------------------------------------------------------------- refusal

def refusal(prompts: list, responses: list[str], meta: list, refuse: bool = True) -> list[float]:
    """A rule reward (Rule-Based Rewards, Mu et al. 2024): 1.0 when the response does what its prompt calls for,
    else 0.0. ``refuse: true`` (for prompts tagged harmful): a refusal by the one refusal detector,
    :func:`lmforge.world.judge.refused`, with no "here is how" / "step 1" compliance after it
    (:func:`lmforge.world.judge.refuses_cleanly`, as the world's checker reads a harmful item). ``refuse:
    false`` (benign prompts, look-alikes): any answer that is not such a refusal.
    Route it to the prompts it is for with the term's ``when`` ({kind: harmful}); it reads wording only, so it
    goes beside a reward model that judges the content, not instead of it."""
    from ..world.judge import refuses_cleanly

    return [1.0 if refuses_cleanly(r) == bool(refuse) else 0.0 for r in responses]
