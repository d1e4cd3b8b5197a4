"""Pairwise verdicts (``model.verdict.mode: pairwise``): "Which response is better, A or B?" read off the LM.

A pairwise generative reward model (Mahan et al. 2024, "Generative Reward Models"; the LLM-as-a-judge pairwise
prompt of Zheng et al. 2023) reads the prompt, response A, response B and a question, and answers with a token;

    ℓ(x; a, b) = log P(A | x, a, b, q) - log P(B | x, a, b, q)

Judges prefer a position (Zheng et al. 2023, §3.4; Wang et al. 2023, "Large Language Models are not Fair
Evaluators"), so both orders are read and averaged (:func:`lmforge.algos.pairwise.both_orders`):
``r(a ≻ b) = ½ [ℓ(x; a, b) - ℓ(x; b, a)]``, antisymmetric by construction.

Layout (one user turn: the conversation, both responses, the question; then the assistant's opening)::

    open + conversation | label_a + response a | label_b + response b + close

each piece tokenised on its own, so the text before ``label_b`` does not depend on response b: packed, the
prompt is forwarded once per group, each *first* response once, and every second response is a branch after it
(:class:`lmforge.data.reward_encode.Encoded` ``branches``, scored at its last token) — a ranking of K
responses costs K first-response blocks plus K(K-1) second-response blocks, not K(K-1) whole sequences.
Truncation depends on the conversation alone: each response keeps at most
``max((budget - |conversation|) // 2, budget // 4)`` tokens, the conversation the rest (from its end).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..data.reward_encode import Encoded
from ..errors import InputError
from ..world.text import render_transcript
from .verdict import Verdict, answer_tokens

PAIR_QUESTION = "Which response is better, A or B? Answer A or B."
LABEL_A, LABEL_B = "\n\nResponse A: ", "\n\nResponse B: "
_MARK = "\x00lmforge-pair\x00"


@dataclass
class PairTemplate:
    """The pieces of a pairwise verdict (saved as the verdict's ``pairwise``)."""
    open: str
    label_a: str
    label_b: str
    close: str
    open_ids: list[int]
    label_a_ids: list[int]
    label_b_ids: list[int]
    close_ids: list[int]  # the question, the end of the turn, the answer's common first tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_pairwise(tokenizer, fmt: str, question: str | None = None, a: str = "A", b: str = "B") -> Verdict:
    """The pairwise verdict template of a tokenizer and input format (``yes_id`` / ``no_id`` are the tokens
    naming the first and the second response)."""
    question = question or PAIR_QUESTION
    if fmt == "chat":
        full = tokenizer.apply_chat_template([{"role": "user", "content": _MARK}], tokenize=False,
                                             add_generation_prompt=True)
        if full.count(_MARK) != 1:
            raise InputError("the chat template does not keep a user message verbatim; use "
                             "model.input_format=transcript", field="model.input_format")
        opening, tail = full.split(_MARK)
    elif fmt == "transcript":
        opening, tail = "User: ", "\nAssistant:"
    else:
        raise InputError(f"a generative reward model needs a causal input format (chat or transcript), not {fmt!r}",
                         field="model.input_format")
    close = "\n\n" + question + tail
    close_ids, a_id, b_id = answer_tokens(tokenizer, close, a, b)

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    t = PairTemplate(opening, LABEL_A, LABEL_B, close, ids(opening), ids(LABEL_A), ids(LABEL_B), close_ids)
    return Verdict(question, "", [], a, b, a_id, b_id, 0.0, mode="pairwise", pairwise=t.as_dict())


def conversation_text(prompt: list[dict[str, str]]) -> str:
    """The prompt as the text of the judge's turn: a lone user message as itself, a conversation as lines."""
    if len(prompt) == 1 and prompt[0]["role"] == "user":
        return prompt[0]["content"]
    return render_transcript(prompt)


def pair_pieces(tokenizer, verdict: Verdict, prompt: list[dict[str, str]], responses: list[str],
                max_length: int) -> tuple[list[int], list[list[int]], bool]:
    """(prompt ids, each response's ids cut to its room, truncated?) under :data:`module rule <lmforge.models.
    verdict_pairwise>`: the response room depends on the conversation alone."""
    t = verdict.pairwise
    fixed = len(t["open_ids"]) + len(t["label_a_ids"]) + len(t["label_b_ids"]) + len(t["close_ids"])
    budget = max_length - fixed
    if budget < 8:
        raise InputError(f"model.max_length={max_length} leaves no room beside the {fixed}-token pairwise "
                         "template", field="model.max_length")
    conv = list(tokenizer(conversation_text(prompt), add_special_tokens=False)["input_ids"])
    room = max((budget - len(conv)) // 2, budget // 4)
    keep = budget - 2 * room
    resp = [list(tokenizer(" " + r, add_special_tokens=False)["input_ids"]) for r in responses]
    cut = len(conv) > keep or any(len(r) > room for r in resp)
    return t["open_ids"] + conv[max(0, len(conv) - keep):], [r[:room] for r in resp], cut


def pair_encoded(verdict: Verdict, prompt_ids: list[int], resp: list[list[int]],
                 ordered: dict[int, list[int]], truncated: bool = False) -> list[tuple[int, list[int], Encoded]]:
    """One :class:`Encoded` per first response ``i`` of ``ordered`` (i -> the second responses j to read after
    it): ``input_ids`` = prompt + label A + response i, a branch per j = label B + response j + close.
    Returns (i, [j, ...], encoded) in the order of ``ordered``."""
    t = verdict.pairwise
    out = []
    for i, js in ordered.items():
        trunk = prompt_ids + t["label_a_ids"] + resp[i]
        branches = [t["label_b_ids"] + resp[j] + t["close_ids"] for j in js]
        out.append((i, list(js), Encoded(trunk, None, truncated, len(prompt_ids), 0, branches)))
    return out


def all_orders(k: int) -> dict[int, list[int]]:
    """Every ordered pair of k responses: i -> [j != i]."""
    return {i: [j for j in range(k) if j != i] for i in range(k)}


def log_odds_matrix(flat: torch.Tensor, encoded: list[tuple[int, list[int], Encoded]], k: int) -> torch.Tensor:
    """``[k, k]`` matrix ``L[i, j] = ℓ(x; i, j)`` (A = response i) from the branch scores ``flat`` (in the
    order of ``encoded``'s branches); NaN where a pair was not read."""
    out = torch.full((k, k), float("nan"))
    at = 0
    for i, js, _ in encoded:
        for j in js:
            out[i, j] = flat[at]
            at += 1
    return out


def check_pairwise(cfg) -> None:
    """Settings a pairwise verdict cannot honour, as one-line errors."""
    if cfg.likelihood_weight:
        raise InputError("model.likelihood_weight needs a pointwise verdict (verdict.mode single or criteria)",
                         field="model.likelihood_weight")
    if cfg.lm_loss_weight:
        raise InputError("model.lm_loss_weight needs a pointwise verdict (verdict.mode single or criteria)",
                         field="model.lm_loss_weight")
