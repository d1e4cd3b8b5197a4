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

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError

QUESTION = "Is this response accurate, relevant, coherent, harmless and honest? Answer Yes or No."
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
    suffix_ids = list(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    a, b = _answer_ids(tokenizer, suffix, suffix_ids, yes), _answer_ids(tokenizer, suffix, suffix_ids, no)
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    if common == min(len(a), len(b)):
        raise InputError(f"the answers {yes!r} and {no!r} do not differ in a token after the question; choose "
                         "other answers", field="model.verdict")
    suffix_ids += a[:common]
    return Verdict(question, suffix, suffix_ids, yes, no, int(a[common]), int(b[common]), likelihood_weight)


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
