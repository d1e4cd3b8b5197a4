"""Reward-model inputs: (prompt, response) -> token ids in the model's input format -> right-padded batches.

Formats (:func:`input_format`): ``chat`` (the tokenizer's chat template), ``transcript`` (``User:`` /
``Assistant:`` lines + EOS, for pre-trained-only models) and ``pair`` (encoders: ``[CLS] prompt [SEP] response
[SEP]``). Long inputs are cut by :func:`assemble`: the prompt from the left, then the response from the right.
A generative reward model's verdict question (:mod:`lmforge.models.verdict`) is a fixed ``suffix`` of token ids
after the response, never cut: the budget for prompt and response is ``max_length - len(suffix)``. Several
verdicts of one response (``verdict.mode: criteria``) are ``branches``: suffixes each read after the same
``input_ids`` (packed, the response is forwarded once and every branch attends to it; padded, each branch is a
row of its own), the budget ``max_length`` minus the longest branch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from ..world.text import render_transcript


def input_format(tokenizer, kind: str, wanted: str = "auto") -> str:
    """``pair`` for encoders; for causal LMs ``chat`` (the tokenizer's template) when it has one, else
    ``transcript`` (``User: ...`` / ``Assistant: ...`` lines, the format a pre-trained-only model has read)."""
    if kind == "encoder":
        if wanted not in ("auto", "pair"):
            raise InputError(f"an encoder reads (prompt, response) as a sentence pair, not {wanted!r}",
                             field="model.input_format")
        return "pair"
    if wanted == "pair":
        raise InputError("input format 'pair' is for encoders", field="model.input_format")
    if wanted == "chat" and not getattr(tokenizer, "chat_template", None):
        raise InputError("the tokenizer has no chat template; use model.input_format=transcript",
                         field="model.input_format")
    if wanted != "auto":
        return wanted
    return "chat" if getattr(tokenizer, "chat_template", None) else "transcript"


def _chat_parts(tokenizer, prompt: list[dict[str, str]], response: str) -> tuple[str, str]:
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": response}], tokenize=False)
    if full.startswith(head):
        return head, full[len(head):]
    return head, response + (tokenizer.eos_token or "")


@dataclass
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int] | None
    truncated: bool
    prompt_len: int | None = None  # causal formats: input_ids[:prompt_len] is the (kept) prompt part
    suffix_len: int = 0  # generative head: the last suffix_len ids are the verdict question
    branches: list[list[int]] | None = None  # several verdicts: suffixes each read after input_ids (not in it)


def encode_parts(tokenizer, fmt: str, prompt: list[dict[str, str]], response: str) -> tuple[list[int], list[int]]:
    """Token ids of the prompt part and the response part, before truncation and special tokens."""
    if fmt == "chat":
        head, tail = _chat_parts(tokenizer, prompt, response)
    elif fmt == "transcript":  # the space goes with the response, as " The" is one token in running text
        head, tail = render_transcript(prompt, add_generation_prompt=True), " " + response + (tokenizer.eos_token or "")
    elif fmt == "pair":
        head, tail = render_transcript(prompt, add_generation_prompt=True), response
    else:
        raise ValueError(f"unknown input format {fmt!r}")
    enc = tokenizer([head, tail], add_special_tokens=False)["input_ids"]
    return list(enc[0]), list(enc[1])


def assemble(tokenizer, fmt: str, p: list[int], r: list[int], max_length: int,
             suffix: list[int] | None = None, branches: list[list[int]] | None = None) -> Encoded:
    """Cut to ``max_length``: the prompt keeps at least a quarter of the budget (from its end), the response
    the rest (from its start), then special tokens are added (``[CLS] p [SEP] r [SEP]`` for encoders) or, for a
    generative reward model, the verdict ``suffix`` (causal formats only)."""
    specials = sum(len(x) for x in pair_template(tokenizer)[0]) if fmt == "pair" else 0
    suffix = list(suffix or [])
    if suffix and fmt == "pair":
        raise ValueError("a verdict suffix needs a causal input format")
    reserved = len(suffix) + max((len(b) for b in branches or []), default=0)
    if branches and fmt == "pair":
        raise ValueError("verdict branches need a causal input format")
    budget = max_length - specials - reserved
    if budget < 2:
        raise InputError(f"model.max_length={max_length} leaves no room beside the {reserved}-token verdict",
                         field="model.max_length")
    keep_p = min(len(p), max(budget // 4, budget - len(r)))
    keep_r = min(len(r), budget - keep_p)
    truncated = keep_p < len(p) or keep_r < len(r)
    p, r = p[len(p) - keep_p:], r[:keep_r]
    if fmt == "pair":
        (pre, mid, post), (t_pre, t_mid, t_post) = pair_template(tokenizer)
        ids = pre + p + mid + r + post
        types = [t_pre] * (len(pre) + len(p)) + [t_mid] * len(mid) + [t_post] * (len(r) + len(post))
        return Encoded(ids, types, truncated)
    return Encoded(p + r + suffix, None, truncated, len(p), len(suffix),
                   [list(b) for b in branches] if branches else None)


def pair_template(tokenizer) -> tuple[tuple[list[int], list[int], list[int]], tuple[int, int, int]]:
    """The special tokens an encoder puts around a sentence pair (``[CLS] A [SEP] B [SEP]`` for BERT,
    ``<s> A </s></s> B </s>`` for RoBERTa) and their token types, read off the tokenizer itself."""
    cached = getattr(tokenizer, "_lmforge_pair_template", None)
    if cached is not None:
        return cached
    a = tokenizer("a", add_special_tokens=False)["input_ids"]
    b = tokenizer("b", add_special_tokens=False)["input_ids"]
    enc = tokenizer("a", "b")
    ids, types = enc["input_ids"], enc.get("token_type_ids") or [0] * len(enc["input_ids"])
    i = next(k for k in range(len(ids)) if ids[k:k + len(a)] == a)
    j = next(k for k in range(i + len(a), len(ids)) if ids[k:k + len(b)] == b)
    out = ((ids[:i], ids[i + len(a):j], ids[j + len(b):]),
           (types[i] if i < len(types) else 0, types[j - 1] if j > i + len(a) else types[j], types[j]))
    tokenizer._lmforge_pair_template = out
    return out


def encode(tokenizer, fmt: str, prompt: list[dict[str, str]], response: str, max_length: int,
           suffix: list[int] | None = None, branches: list[list[int]] | None = None) -> Encoded:
    p, r = encode_parts(tokenizer, fmt, prompt, response)
    return assemble(tokenizer, fmt, p, r, max_length, suffix, branches)


def lm_targets(e: Encoded) -> list[int]:
    """Next-token targets aligned with ``e.input_ids`` for the auxiliary LM loss on the response: position t
    predicts token t+1 while both are response tokens (the verdict suffix and the prompt are not scored, nor
    the response's first token, which is predicted from the prompt's last token — in a packed row that
    position is shared by every response of the prompt); -100 elsewhere."""
    out = [-100] * len(e.input_ids)
    if e.prompt_len is None:
        return out
    end = len(e.input_ids) - e.suffix_len  # response tokens: [prompt_len, end)
    for t in range(e.prompt_len, end - 1):
        out[t] = e.input_ids[t + 1]
    return out


def expand_branches(rows: list[Encoded]) -> tuple[list[Encoded], list[int]]:
    """Rows with ``branches`` as one plain sequence per branch (``input_ids + branch``), branch-minor, and the
    row each came from; only a row's first branch keeps the response's LM targets, so each response counts once
    (the others get ``prompt_len=None``: :func:`lm_targets` gives them none)."""
    out, of = [], []
    for i, r in enumerate(rows):
        for b, ids in enumerate(r.branches or [[]]):
            out.append(Encoded(r.input_ids + ids, None, r.truncated, r.prompt_len if b == 0 else None,
                               len(ids) or r.suffix_len))
            of.append(i)
    return out, of


def collate(rows: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` (and ``token_type_ids`` for encoders). Rows with
    ``branches`` become a row per branch (:func:`expand_branches`), ``branch_of`` naming the row's sequence."""
    if rows and rows[0].branches:
        flat, of = expand_branches(rows)
        out = collate(flat, pad_id)
        out["branch_of"] = torch.tensor(of, dtype=torch.long)
        out["lm_seq"] = out["branch_of"].unsqueeze(-1).expand_as(out["input_ids"]).clone()
        return out
    n = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    types = torch.zeros((len(rows), n), dtype=torch.long) if rows[0].token_type_ids is not None else None
    for i, r in enumerate(rows):
        ids[i, :len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, :len(r.input_ids)] = 1
        if types is not None:
            types[i, :len(r.token_type_ids)] = torch.tensor(r.token_type_ids)
    out = {"input_ids": ids, "attention_mask": mask}
    if any(r.suffix_len for r in rows):  # generative head: targets of the auxiliary LM loss
        tgt = torch.full((len(rows), n), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            tgt[i, :len(r.input_ids)] = torch.tensor(lm_targets(r), dtype=torch.long)
        out["lm_targets"] = tgt
        out["lm_seq"] = torch.arange(len(rows)).unsqueeze(-1).expand(-1, n).clone()  # whose token each is
    if types is not None:
        out["token_type_ids"] = types
    return out
