"""The judge's prompts (one user message each, so any chat template takes them) and reading a written verdict.

Pairwise: the conversation, then two responses labelled A and B; the judge answers with one letter.
Criterion score: the conversation and one response; the judge answers with one digit from 1 to 7.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .rubric import Rubric

PAIR_CHOICES = ("A", "B")
SCORE_CHOICES = tuple(str(d) for d in range(1, 8))
_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class Query:
    """One question to the judge: chat messages and the answers it may give (a single token each, ideally).

    ``info`` says what is asked (``{"kind": "pair", "shown": [i, j]}`` or ``{"kind": "score", "response": i,
    "criterion": c}``); backends do not need it, but logs and tests may.
    """
    messages: list[dict[str, str]]
    choices: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


def conversation(prompt: Sequence[dict[str, str]]) -> str:
    return "\n\n".join(f"{_ROLE_NAMES.get(m['role'], m['role'])}: {m['content']}" for m in prompt)


def pair_query(rubric: Rubric, prompt: Sequence[dict[str, str]], first: str, second: str,
               shown: tuple[int, int] = (0, 1)) -> Query:
    """Which of two responses is better, ``first`` shown as A and ``second`` as B."""
    principles = "\n".join(f"{n}. {p}" for n, p in enumerate(rubric.principles, 1))
    text = (f"{rubric.instructions}\n\n"
            "Compare the two responses to the conversation below and decide which one is better, judged by "
            f"these principles:\n{principles}\n\n"
            f"[Conversation]\n{conversation(prompt)}\n[End of Conversation]\n\n"
            f"[Response A]\n{first}\n[End of Response A]\n\n"
            f"[Response B]\n{second}\n[End of Response B]\n\n"
            "Do not let the order of the responses or their length sway you. Which response is better? "
            "Answer with a single letter: A or B.")
    return Query([{"role": "user", "content": text}], PAIR_CHOICES, {"kind": "pair", "shown": list(shown)})


def score_query(rubric: Rubric, prompt: Sequence[dict[str, str]], response: str, criterion: str,
                index: int = 0) -> Query:
    """How good ``response`` is on ``criterion``, 1 to 7."""
    text = (f"{rubric.instructions}\n\n"
            f"Rate the response to the conversation below for {criterion}: {rubric.criteria[criterion]}\n\n"
            f"[Conversation]\n{conversation(prompt)}\n[End of Conversation]\n\n"
            f"[Response]\n{response}\n[End of Response]\n\n"
            f"Rate the response for {criterion} from 1 (very poor) to 7 (excellent). "
            "Answer with a single digit from 1 to 7.")
    return Query([{"role": "user", "content": text}], SCORE_CHOICES,
                 {"kind": "score", "response": index, "criterion": criterion})


def parse_verdict(text: str | None, choices: Sequence[str]) -> str | None:
    """The choice a written verdict names, or None when it names none or several (undecided).

    Read in order: the answer itself (``A``, ``(B)``, ``**A**``, ``6/7``); ``A is better``; a labelled verdict
    (``Response A``, ``Answer: B``, ``[[A]]``, ``Rating: 5``); else the only choice standing alone in the text.
    An ``A`` that starts a phrase (``A good answer ...``) is the article, not a verdict.
    """
    if not text:
        return None
    text = text.strip()
    alts = "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))

    def verdicts(pattern: str, flags: int = 0) -> list[str]:
        return [m.group(1) for m in re.finditer(pattern, text, flags)
                if m.group(1) in choices and not _article(text, m.end(1))]

    first = verdicts(rf"^[\s*\"'`(\[]*({alts})(?=\s*(?:$|[\n*\"'`)\].,:;!/-]))")
    if first:
        return first[0]
    better = verdicts(rf"\b({alts})\b\s+is\s+(?:clearly\s+|much\s+|slightly\s+)?(?:the\s+)?better", re.IGNORECASE)
    if better:
        return better[0]
    labels = r"\b(?:answer|verdict|rating|score|choice)\b\s*(?:is)?\s*[:=]?\s*"
    for pattern in (rf"(?:\[\[|{labels}[*\"'(\[]*)({alts})(?!\w)",
                    rf"\b(?:response|output|assistant)\s+[*\"'(\[]*({alts})(?!\w)"):
        found = set(verdicts(pattern, re.IGNORECASE))
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    alone = set(verdicts(rf"(?<!\w)({alts})(?!\w)"))
    return alone.pop() if len(alone) == 1 else None


def _article(text: str, end: int) -> bool:
    """Whether the ``A`` ending at ``end`` is the article (``A good answer``), not the letter (``A is better``)."""
    return (end >= 1 and text[end - 1] == "A" and (end == 1 or not text[end - 2].isalnum())
            and re.match(r"\s+(?!(?:is|was|wins|and|or|vs)\b)[a-z]", text[end:]) is not None)
