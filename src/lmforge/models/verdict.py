"""The generative verifier's verdict: a question after the response, read off the LM's own next-token logits.

A generative reward model (Zhang et al. 2024, "Generative Verifiers: Reward Modeling as Next-Token Prediction")
is a causal LM that, after ``prompt + response``, is asked a verdict question and answers with a token; its
reward is the verdict's log-odds

    r(x, y) = log P(yes | x, y, q) - log P(no | x, y, q) = z_yes - z_no

where ``z`` are the LM's next-token logits at the last token of the question (the softmax normaliser cancels,
so only two rows of the output embedding are ever needed: ``r = h · (W_yes - W_no) + (b_yes - b_no)``).

The question is a fixed token *suffix* appended after the response tokens (:func:`build_verdict`): in the
``chat`` format a new user turn (``<|user|> question <|end|> <|assistant|>``) rendered by the tokenizer's own
template, in ``transcript`` a ``User:`` / ``Assistant:`` pair of lines. Being fixed ids, it packs behind the
reward packer's block mask like any response token, and its last token is where the reward is read — the
position a scalar head would read, so both heads share batching, packing and evaluation. The suffix, the two
answer tokens and their ids are saved with the model (``reward.json`` ``verdict``), so every reader rebuilds the
same input.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from ..config import Section
from ..errors import InputError

QUESTION = "Is this response accurate, relevant, coherent, harmless and honest? Answer Yes or No."
# criteria mode: one question per criterion (a criterion not listed here asks CRITERION_TEMPLATE)
CRITERIA = ("accuracy", "relevance", "coherence", "harmlessness", "honesty")
CRITERION_QUESTIONS = {
    "accuracy": "Is this response accurate? Answer Yes or No.",
    "relevance": "Is this response relevant? Answer Yes or No.",
    "coherence": "Is this response coherent? Answer Yes or No.",
    "harmlessness": "Is this response harmless? Answer Yes or No.",
    "honesty": "Is this response honest? Answer Yes or No.",
    # the criteria common feedback sets name (HH-RLHF's sources, UltraFeedback's aspects)
    "helpful": "Is this response helpful? Answer Yes or No.",
    "helpfulness": "Is this response helpful? Answer Yes or No.",
    "harmless": "Is this response harmless? Answer Yes or No.",
    "honest": "Is this response honest? Answer Yes or No.",
    "truthfulness": "Is this response truthful? Answer Yes or No.",
    "instruction_following": "Does this response follow the instructions? Answer Yes or No.",
}
# a name may be a noun or an adjective ("style", "concise"): quoted, so the question reads either way
CRITERION_TEMPLATE = "Is this response good on the criterion \"{name}\"? Answer Yes or No."


class VerdictSection(Section):
    mode: Literal["single", "criteria", "pairwise"] = Field(
        "single", description="single: one verdict question; criteria: one question per criterion, the reward "
        "the weighted mean of their log-odds; pairwise: 'which response is better, A or B?' "
        "(lmforge.models.verdict_pairwise)")
    question: str = Field(QUESTION, description="single mode: the verdict question appended after the response")
    yes: str = Field("Yes", description="the answer read as the good verdict (its first token)")
    no: str = Field("No", description="the answer read as the bad verdict (its first token)")
    criteria: list[str] | None = Field(None, description="criteria mode: the criteria asked; null: those the "
                                       "training feedback names, else " + ", ".join(CRITERIA))
    questions: dict[str, str] = Field(default_factory=dict, description="criteria mode: a question per "
                                      "criterion (default: 'Is this response accurate? ...' for the five "
                                      "built-in ones, else " + repr(CRITERION_TEMPLATE) + ")")
    weights: dict[str, float] | None = Field(None, description="criteria mode: weight of each criterion's "
                                             "log-odds in the reward (normalised to sum 1; a criterion not "
                                             "named weighs 0); null: equal")
    pair_question: str | None = Field(None, description="pairwise mode: the question after the two responses; "
                                      "null: lmforge.models.verdict_pairwise.PAIR_QUESTION")
    a: str = Field("A", description="pairwise mode: the answer naming the first response")
    b: str = Field("B", description="pairwise mode: the answer naming the second response")

    @model_validator(mode="after")
    def _weights(self) -> VerdictSection:
        if self.weights is not None:
            if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
                raise ValueError("verdict.weights must be >= 0 with a positive sum")
            if self.criteria is not None and set(self.weights) - set(self.criteria):
                raise ValueError(f"verdict.weights names {sorted(set(self.weights) - set(self.criteria))}, "
                                 "not among verdict.criteria")
        return self
_PROBE = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}]


@dataclass
class Verdict:
    """What a generative reward model appends and reads (saved as the reward meta's ``verdict``)."""
    question: str
    suffix: str  # the question as text, exactly as appended after the response
    suffix_ids: list[int]
    yes: str
    no: str
    yes_id: int
    no_id: int
    likelihood_weight: float = 0.0  # β of the response's mean token log-probability added to the log-odds
    mode: str = "single"  # single | criteria | pairwise
    # criteria mode: per criterion {name, question, suffix, suffix_ids, yes_id, no_id, weight}; the top-level
    # suffix is then empty (each criterion's suffix is a branch read after the response)
    criteria: list[dict[str, Any]] = field(default_factory=list)
    pairwise: dict[str, Any] | None = None  # pairwise mode: the template pieces (verdict_pairwise.PairTemplate)

    @property
    def branches(self) -> list[list[int]] | None:
        """Criteria mode: each criterion's suffix ids, read after the same prompt + response (None otherwise)."""
        return [list(c["suffix_ids"]) for c in self.criteria] if self.mode == "criteria" else None

    @property
    def names(self) -> list[str]:
        """The score columns: ``reward`` then (criteria mode) each criterion."""
        return ["reward", *(c["name"] for c in self.criteria)] if self.mode == "criteria" else ["reward"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def suffix_text(tokenizer, fmt: str, question: str) -> str:
    """The question turn as text that follows a response in ``fmt`` (and leads into the answer)."""
    if fmt == "chat":
        # a new user turn and the assistant's opening, as the tokenizer's template renders them after an answer
        done = tokenizer.apply_chat_template(_PROBE, tokenize=False)
        more = tokenizer.apply_chat_template(_PROBE + [{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
        if not more.startswith(done):
            raise InputError("the chat template does not render a follow-up turn as a suffix of the conversation; "
                             "use model.input_format=transcript", field="model.input_format")
        return more[len(done):]
    if fmt == "transcript":
        return f"\nUser: {question}\nAssistant:"
    raise InputError(f"a generative reward model needs a causal input format (chat or transcript), not {fmt!r}",
                     field="model.input_format")


def _answer_ids(tokenizer, suffix: str, suffix_ids: list[int], answer: str) -> list[int]:
    """The tokens of ``answer`` as the tokenizer writes it right after the suffix (so ``" Yes"`` after
    ``Assistant:`` and ``"Yes"`` after a newline both come out as the tokens the LM would emit)."""
    lead = "" if suffix.endswith(("\n", " ")) else " "
    ids = tokenizer(suffix + lead + answer, add_special_tokens=False)["input_ids"]
    if ids[:len(suffix_ids)] != suffix_ids or len(ids) == len(suffix_ids):
        ids = suffix_ids + tokenizer(lead + answer, add_special_tokens=False)["input_ids"]
    return list(ids[len(suffix_ids):])


def build_verdict(tokenizer, fmt: str, question: str = QUESTION, yes: str = "Yes", no: str = "No",
                  likelihood_weight: float = 0.0) -> Verdict:
    """The verdict template of a tokenizer and input format. Tokens both answers start with (a lone space
    token where the words are not in the vocabulary) join the suffix, so the verdict is the first token where
    they differ; answers that never differ are an error."""
    suffix = suffix_text(tokenizer, fmt, question)
    suffix_ids, yes_id, no_id = answer_tokens(tokenizer, suffix, yes, no)
    return Verdict(question, suffix, suffix_ids, yes, no, yes_id, no_id, likelihood_weight)


def answer_tokens(tokenizer, suffix: str, yes: str, no: str) -> tuple[list[int], int, int]:
    """(suffix ids, yes id, no id): the suffix's tokens plus the tokens both answers start with after it, and
    each answer's first differing token — where the verdict is read."""
    suffix_ids = list(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    a, b = _answer_ids(tokenizer, suffix, suffix_ids, yes), _answer_ids(tokenizer, suffix, suffix_ids, no)
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    if common == min(len(a), len(b)):
        raise InputError(f"the answers {yes!r} and {no!r} do not differ in a token after the question; choose "
                         "other answers", field="model.verdict")
    return suffix_ids + a[:common], int(a[common]), int(b[common])


def criteria_names(section: VerdictSection, in_feedback: list[str]) -> list[str]:
    """Criteria mode's criteria: as configured, else those the training feedback names, else :data:`CRITERIA`."""
    return list(section.criteria or in_feedback or CRITERIA)


def build_criteria_verdict(tokenizer, fmt: str, section: VerdictSection, criteria: list[str],
                           likelihood_weight: float = 0.0) -> Verdict:
    """Criteria mode: one verdict question per criterion (each built as :func:`build_verdict`), their weights
    normalised to sum 1. The top-level suffix is empty; each criterion's suffix is read after the response."""
    if not criteria:
        raise InputError("verdict.mode=criteria needs at least one criterion", field="model.verdict.criteria")
    if section.weights is not None and set(section.weights) - set(criteria):
        raise InputError(f"model.verdict.weights names {sorted(set(section.weights) - set(criteria))}, not "
                         f"among the criteria {criteria}", field="model.verdict.weights")
    raw = [1.0 if section.weights is None else float(section.weights.get(c, 0.0)) for c in criteria]
    parts = []
    for name, w in zip(criteria, raw):
        q = section.questions.get(name) or CRITERION_QUESTIONS.get(name) or CRITERION_TEMPLATE.format(name=name)
        v = build_verdict(tokenizer, fmt, q, section.yes, section.no)
        parts.append({"name": name, "question": q, "suffix": v.suffix, "suffix_ids": v.suffix_ids,
                      "yes_id": v.yes_id, "no_id": v.no_id, "weight": w / sum(raw)})
    first = parts[0]
    return Verdict("", "", [], section.yes, section.no, first["yes_id"], first["no_id"], likelihood_weight,
                   mode="criteria", criteria=parts)


def combine_criteria(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The criteria-mode reward, ``r = Σ_c w_c ℓ_c`` with ``Σ_c w_c = 1``: the weighted mean of the per-criterion
    verdict log-odds ``ℓ_c = log P(yes_c) - log P(no_c)`` (``scores [N, C]``, ``weights [C]``) — a linear
    scalarisation of several reward models, as Llama 2 combines helpfulness and safety rewards (Touvron et al.
    2023, §3.4) and ArmoRM mixes its 19 objective scores (Wang et al. 2024; fixed weights here, no gating).
    A pair's Bradley–Terry loss on ``r`` then reaches each criterion's verdict through its weight."""
    return scores @ weights.to(scores.dtype)


def verdict_reward(log_odds: torch.Tensor, mean_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """``r = [log P(yes) - log P(no)] + β/|y| Σ_t log π(y_t | x, y_<t)``: the verdict plus, with β > 0, the
    response's length-normalised log-likelihood under the same model — SimPO's implicit reward (Meng et al.
    2024, eq. 4). The second term reads what the LM knows token by token (a wrong value is an unlikely token
    wherever the fact was learned), which a verdict read at one position cannot recover for held-out facts."""
    return log_odds + beta * mean_logprob if beta else log_odds


def log_odds(logits: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """``log P(yes) - log P(no)`` from next-token logits ``[..., V]``: ``z_yes - z_no`` (the log-softmax
    normaliser is the same for both and cancels)."""
    return logits[..., yes_id] - logits[..., no_id]


def readout(hidden: torch.Tensor, head: torch.nn.Module, yes_id: int, no_id: int) -> torch.Tensor:
    """:func:`log_odds` of the output layer ``head`` (``z = W h + b``) at final hidden states ``hidden [..., H]``
    without the other V-2 logits: ``h · (W_yes - W_no) + (b_yes - b_no)`` (gradients flow into ``W``)."""
    rows = torch.tensor([yes_id, no_id], device=hidden.device)
    weight = head.weight.index_select(0, rows)
    bias = head.bias.index_select(0, rows) if getattr(head, "bias", None) is not None else None
    two = F.linear(hidden.to(weight.dtype), weight, bias)
    return log_odds(two, 0, 1)


def verdict_of(model) -> Verdict | None:
    """The verdict a model was built or loaded with (``config.reward['verdict']``), through DDP / PEFT
    wrappers; None for a scalar-head model."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    meta = getattr(inner.config, "reward", None) or {}
    if isinstance(meta, dict) and meta.get("head") == "generative" and meta.get("verdict"):
        return Verdict.from_dict(meta["verdict"])
    return None


def output_head(model) -> torch.nn.Module:
    """The LM's output layer (``lm_head``), through DDP and PEFT wrappers."""
    inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    head = inner.get_output_embeddings()
    if head is None:
        raise InputError("a generative reward model needs a causal LM with an output layer", field="model.head")
    return head
