"""A validation split of the user's own SFT data: held out before weighting, scored at each evaluation.

``data.val_fraction`` of every chat file source (not the built-in world, whose evaluation has its own held-out
split, nor ``format: text`` replay) is held out by a seeded draw, at least one example when the source has two
or more. It is held out *before* mixture weighting, so no copy of a held-out example reaches training. At each
evaluation the tuned model's mean NLL per assistant token on it is logged as ``val_loss`` (the same loss mask as
training), and greedy answers to the first few of its prompts go to ``samples.jsonl`` with the reference.
"""
from __future__ import annotations

import math
import random
import time
from typing import Any

import torch

from ..data.chat import Example, SourceSpec, load_source, weighted
from ..data.packing import collate
from ..data.sft_tokenize import Tokenized, tokenize_examples
from ..runs import Run


def val_count(n: int, fraction: float) -> int:
    """How many of ``n`` examples to hold out: round(fraction * n), at least 1 while 1 is left to train on."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(fraction * n)))


def split_validation(examples: list[Example], fraction: float, seed: int, name: str
                     ) -> tuple[list[Example], list[Example]]:
    """(train, val): a seeded choice of :func:`val_count` examples, both lists in file order.

    The draw depends on the seed and the source's name only, so the same data and seed always hold out the
    same examples, whatever the other sources are."""
    k = val_count(len(examples), fraction)
    held = set(random.Random(f"val|{seed}|{name}").sample(range(len(examples)), k))
    return ([ex for i, ex in enumerate(examples) if i not in held],
            [ex for i, ex in enumerate(examples) if i in held])


def holds_out(spec: SourceSpec) -> bool:
    return spec.path is not None and spec.format != "text"


def load_mixture_with_val(specs: list[SourceSpec], world_seed: int, seed: int, val_fraction: float
                          ) -> tuple[list[Example], list[Example], dict[str, dict[str, int]]]:
    """:func:`lmforge.data.chat.load_mixture` with a validation split taken from each chat file source
    before weighting (same seeded weighting and shuffle, so a run without file sources is unchanged)."""
    rng = random.Random(f"mixture|{seed}")
    train: list[Example] = []
    val: list[Example] = []
    counts: dict[str, dict[str, int]] = {}
    for spec in specs:
        examples = load_source(spec, world_seed)
        held: list[Example] = []
        if holds_out(spec):
            examples, held = split_validation(examples, val_fraction, seed, spec.name)
        chosen = weighted(examples, spec.weight, rng)
        counts[spec.name] = {"read": len(examples) + len(held), "used": len(chosen)}
        if holds_out(spec):
            counts[spec.name]["val"] = len(held)
        train += chosen
        val += held
    rng.shuffle(train)
    return train, val, counts


def tokenize_val(tokenizer, val: list[Example], max_length: int, truncation: str, loss_spans: str
                 ) -> list[Tokenized]:
    tokens, _ = tokenize_examples(tokenizer, val, max_length, truncation, loss_spans)
    return tokens


@torch.no_grad()
def val_loss(model, tokens: list[Tokenized], pad_id: int, batch_size: int = 8,
             chunk_tokens: int | None = 1024) -> float:
    """Mean NLL per assistant token over ``tokens`` (one example per row, unpacked): sum over all tokens
    divided by their count, so long answers weigh by their length as in training. Forwarded in chunks of at
    most ``chunk_tokens`` padded tokens, as in training, so the logits stay small for a large vocabulary."""
    from .sft import sft_loss

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    try:
        for lo in range(0, len(tokens), batch_size):
            batch = collate([[t] for t in tokens[lo:lo + batch_size]], pad_id, packed=False)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = sft_loss(model, batch, chunk_tokens)
            total, count = total + float(out.loss), count + out.count
    finally:
        model.train(was_training)
    return total / count if count else math.nan


def sample_val(model, tokenizer, val: list[Example], run: Run, step: int, n: int, max_new_tokens: int,
               batch_size: int, threads: int | None) -> None:
    """Greedy answers to the first ``n`` held-out prompts (each conversation up to its last assistant turn)."""
    from ..engine.threads import torch_threads
    from ..generation.params import SamplingParams
    from ..rollout.generate import generate

    items = [ex for ex in val if ex.messages][:n]
    if not items:
        return
    prompts, refs = [], []
    for ex in items:
        last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
        prompts.append(ex.messages[:last])
        refs.append(ex.messages[last]["content"])
    with torch_threads(threads):
        outs = generate(model, tokenizer, prompts, SamplingParams(max_new_tokens=max_new_tokens),
                        batch_size=batch_size)
    for ex, p, ref, out in zip(items, prompts, refs, outs):
        run.log_sample(step, p[-1]["content"] if p else "", out[0]["text"], suite="val", source=ex.where,
                       reference=ref, finished=out[0]["finished"])


def make_val_evaluate(cfg, run: Run, tokenizer, val: list[Example], tokens: list[Tokenized], pad_id: int):
    """The trainer's eval hook for the validation split, reported by the main process.

    A model sharded by FSDP2 runs its forward as collectives, so then every process computes the (identical)
    validation loss and no samples are generated (sampled lengths differ between processes, and a process
    that stops decoding first would leave the others waiting)."""
    from ..engine.distributed import is_sharded

    def evaluate(model, step: int) -> dict[str, Any]:
        sharded = is_sharded(model)
        if not (run.main or sharded):
            return {}
        t0 = time.time()
        loss = val_loss(model, tokens, pad_id, chunk_tokens=cfg.data.chunk_tokens)
        if not run.main:
            return {}
        out: dict[str, Any] = {"val_loss": loss, "val_examples": len(tokens)}
        if not sharded:
            sample_val(model, tokenizer, val, run, step, cfg.eval.samples, cfg.eval.max_new_tokens,
                       cfg.eval.batch_size, cfg.eval.threads)
        out["val_eval_seconds"] = round(time.time() - t0, 2)
        return out

    return evaluate


def combine(*hooks):
    """One eval hook that runs each given hook (None skipped) and merges their metrics; None if none given."""
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None

    def evaluate(model, step: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for h in hooks:
            out.update(h(model, step) or {})
        return out

    return evaluate
