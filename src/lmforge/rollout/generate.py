"""Batched generation from chat prompts with the model's own chat template and a KV cache (HF ``generate``).

Used by evaluation (held-out prompts), response collection for labeling, and later by RL rollouts.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus the chat end-of-turn tokens the tokenizer knows (e.g. ``<|end|>``, ``<|im_end|>``)."""
    ids = []
    for tok in (tokenizer.eos_token, "<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def render_prompts(tokenizer, prompts: Sequence[list[dict[str, str]] | str]) -> list[str]:
    """Chat prompts through the chat template (with the generation prompt); raw strings pass through."""
    out = []
    for p in prompts:
        if isinstance(p, str):
            out.append(p)
        else:
            out.append(tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True))
    return out


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[list[dict[str, str]] | str], sampling: SamplingConfig | None = None,
             batch_size: int = 16, num_return_sequences: int = 1) -> list[list[dict]]:
    """For each prompt, ``num_return_sequences`` completions as ``{"text", "tokens", "finished"}``.

    ``finished`` is True when the completion ended with a stop token rather than the length limit.
    """
    sampling = sampling or SamplingConfig()
    texts = render_prompts(tokenizer, prompts)
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    results: list[list[dict]] = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs = dict(max_new_tokens=sampling.max_new_tokens, eos_token_id=stops, pad_token_id=pad_id,
                          num_return_sequences=num_return_sequences,
                          repetition_penalty=sampling.repetition_penalty)
            if sampling.temperature > 0:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                              top_k=sampling.top_k or None)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            out = model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            for i in range(len(chunk)):
                group = []
                for j in range(num_return_sequences):
                    row = new[i * num_return_sequences + j].tolist()
                    finished = False
                    cut = len(row)
                    for pos, t in enumerate(row):
                        if t in stops:
                            cut, finished = pos, True
                            break
                    ids = [t for t in row[:cut] if t != pad_id]
                    group.append({"text": tokenizer.decode(ids, skip_special_tokens=True),
                                  "tokens": len(ids), "finished": finished})
                results.append(group)
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return results
