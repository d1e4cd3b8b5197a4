"""DPO recipe: preference pairs (rankings as pairs), or KTO's good/bad examples -> a chat model tuned by a loss.

Losses come from :mod:`lmforge.algos.preference_losses` by name. The reference log-probs ``log π_ref(y|x)`` are
computed once before training (batched, no grad), only for the rows the run trains on and the held-out ones, and
cached in the run folder (:mod:`lmforge.stages.dpo_reference`); with a LoRA adapter the reference is the same model
with the adapter switched off (no second copy). ORPO and SimPO need no reference and skip it. KTO scores each
example and a mismatched one (its prompt, another example's response) in one prompt-shared row; the batch mean of
the mismatched log-ratios is its reference point z0. The engine gets a per-pair (per-example) loss *sum* and the
weight sum and normalises globally.

The loss and its batch plumbing are in :mod:`lmforge.stages.dpo_loss`.

Writes ``runs/<name>/``: config.yaml, data_report.json, reference_logprobs.pt, metrics.jsonl, checkpoints/,
final/ (HF model, or the adapter folder), summary.json (train loss, held-out accuracy before/after).
"""
from __future__ import annotations

import inspect
import json
import math
import random
import time
from collections import Counter
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from ..algos.preference_losses import (
    kto,
    preference_accuracy,
    preference_loss,
)
from ..config import Section, dump_config
from ..data.dpo_data import (
    PairBatches,
    collate,
    collate_shared,
    encode_kto,
    encode_pairs,
    to_kto_examples,
    to_pairs,
)
from ..engine import TrainConfig, Trainer, init_distributed, seed_everything
from ..errors import InputError
from ..models.peft import PeftSection
from ..models.tokens import pad_id
from ..runs import Run, RunConfig, atomic_write_text, discard_failed_start
from ..trackers import LogConfig
from .dpo_loss import kto_terms, make_loss, pair_terms, sequence_logprobs
from .dpo_reference import REFERENCE_FILE, compute_reference, fingerprint, planned_rows, reference_for


class ModelSection(Section):
    path: str | None = Field(None, description="the model to tune (an SFT run's final/, a HF folder, a hub id)")
    tokenizer: str | None = Field(None, description="null: the model's own")
    dtype: Literal["float32", "bfloat16"] = "float32"


class DataSection(Section):
    train: list[str] = Field(min_length=1, description="preference JSONL files (pairs, rankings; for kto also "
                             "binary good/bad records)")
    eval: list[str] = Field(default_factory=list, description="held-out files; empty: hold out eval_fraction")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="share of training records held out (seeded)")
    ranking_pairs: Literal["all", "best_vs_rest"] = Field("all", description="a K-wise ranking as pairs: all (C(K,2) "
                                                  "pairs, each weighted 1/C(K,2)) or best_vs_rest (K-1 pairs, "
                                                  "each weighted 1/(K-1))")
    on_invalid: Literal["error", "skip"] = Field("error", description="a record the format rejects (e.g. "
                                                 "identical chosen and rejected): stop with file:line, or skip "
                                                 "it and count the reason in data_report.json")
    max_length: int = Field(512, ge=8, description="tokens per prompt+response; longer prompts lose their "
                            "start, responses that do not fit are dropped")
    chat_template: str | None = Field(None, description="null: the tokenizer's; 'chatml', 'lmforge' or a file")
    loss_spans: Literal["auto", "generation", "prefix"] = "auto"
    chunk_tokens: int | None = Field(None, ge=1, description="padded tokens per forward chunk; null: one")
    share_prompt: bool = Field(True, description="forward each pair as one row [prompt | chosen | rejected] "
                               "behind a block mask (the prompt once); false: two padded rows per pair")


class LossSection(Section):
    name: str = Field("dpo", description="dpo, cdpo, robust, ipo, kto, orpo, simpo or rpo")
    beta: float | None = Field(None, gt=0, description="null: the loss's own default")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cdpo / robust / simpo: ε")
    gamma: float | None = Field(None, description="simpo's target margin; null: its default")
    alpha: float | None = Field(None, ge=0, description="rpo: α, the weight of the chosen response's per-token "
                                "NLL; null: its default (1)")
    length_normalize: bool = Field(False, description="dpo/cdpo/robust: per-token mean log-probs (policy "
                                   "and reference) instead of sums, so long responses do not dominate")
    desirable_weight: float = Field(1.0, gt=0, description="kto: λ_D, the weight of a desirable example")
    undesirable_weight: float = Field(1.0, gt=0, description="kto: λ_U, the weight of an undesirable example")


class DPOConfig(Section):
    run: RunConfig = RunConfig(name="dpo")
    log: LogConfig = LogConfig()
    model: ModelSection = ModelSection()
    data: DataSection
    loss: LossSection = LossSection()
    peft: PeftSection = PeftSection()
    epochs: float | None = Field(None, gt=0, description="sets train.steps from the training pairs; null: "
                                 "use train.steps")
    train: TrainConfig = TrainConfig(steps=100, batch_size=8, lr=5e-6, warmup_steps=0, weight_decay=0.0,
                                     log_every=10, grad_clip=1.0)
    threads: int | None = Field(None, ge=1, description="torch intra-op threads while this stage runs (restored "
                                "after); null: torch's default")

    @model_validator(mode="after")
    def _check(self) -> DPOConfig:
        preference_loss(self.loss.name)  # an unknown name is an error naming the known ones
        if self.train.distributed == "fsdp":
            raise ValueError("train.distributed=fsdp is not supported by lmforge dpo; use ddp")
        return self


# ---------------------------------------------------------------------------- held-out accuracy

# rewards this close are a tie: float32 log-prob sums of one response batched differently (the reference pass vs
# the evaluation) differ by ~1e-7 per token-nat, i.e. ~1e-5 for a 135M model's long answers before β
TIE_TOL = 1e-4

@torch.no_grad()
def heldout_metrics(model, loss: LossSection, rows, weights, ref, pad: int, batch_size: int,
                    chunk_tokens: int | None, share_prompt: bool = False, desirable: torch.Tensor | None = None
                    ) -> dict[str, float]:
    """Weighted held-out loss and accuracy: pairs, the implicit reward of chosen > rejected (and the policy's own
    log-prob order); KTO, the implicit reward on the right side of z0 (above for desirable, below otherwise). A tie
    (within ``TIE_TOL``: the policy recomputes the reference's log-probs in another batch layout) counts half."""
    if not rows:
        return {}
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    keys = ["heldout_loss", "heldout_accuracy"] + (["heldout_kl"] if desirable is not None else
                                                   ["heldout_margin", "heldout_logp_accuracy"])
    tot = dict.fromkeys(keys, 0.0)
    wsum = 0.0
    for lo in range(0, len(rows), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(rows))))
        batch = (collate_shared if share_prompt else collate)([rows[i] for i in idx], idx,
                                                              [weights[i] for i in idx], pad)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        logp, n_tok = sequence_logprobs(model, batch, chunk_tokens)
        r = ref[idx].to(device) if ref is not None else None
        w = batch["weight"].to(logp.dtype)
        if desirable is not None:
            good = desirable[idx].to(device)
            per, reward, z0 = kto_terms(loss, logp, r, good)
            beta = loss.beta if loss.beta is not None else inspect.signature(kto).parameters["beta"].default
            right = preference_accuracy(torch.where(good, reward, beta * z0), torch.where(good, beta * z0, reward),
                                        tie=0.5, tol=TIE_TOL)
            tot["heldout_kl"] += float(z0) * float(w.sum())
        else:
            per, rc, rr = pair_terms(loss, logp, n_tok, r)
            right = preference_accuracy(rc, rr, tie=0.5, tol=TIE_TOL)
            tot["heldout_margin"] += float((w * (rc - rr)).sum())
            b = len(idx)  # the policy's own preference: summed log-prob of chosen above rejected
            logp_right = preference_accuracy(logp[:b], logp[b:], tie=0.5, tol=TIE_TOL)
            tot["heldout_logp_accuracy"] += float((w * logp_right.to(w.dtype)).sum())
        tot["heldout_loss"] += float((w * per).sum())
        tot["heldout_accuracy"] += float((w * right.to(w.dtype)).sum())
        wsum += float(w.sum())
    model.train(was)
    return {k: v / max(wsum, 1e-12) for k, v in tot.items()} | {"heldout_pairs": len(rows)}


# ---------------------------------------------------------------------------- the recipe

def load_data(cfg: DPOConfig, tokenizer, run: Run):
    """(train examples, their rows, held-out examples, their rows, report); pairs, or KTO examples (each row a
    pair ``(example, mismatched)``). Writes data_report.json."""
    from ..data.reward_data import DataReport, read_preference_files

    report = DataReport()
    counts = report.counts
    records = read_preference_files(cfg.data.train, report, cfg.data.on_invalid)
    if cfg.data.eval:
        held_records = read_preference_files(cfg.data.eval, DataReport(), cfg.data.on_invalid)
    else:  # hold out whole records, so a ranking's pairs never sit on both sides
        order = list(range(len(records)))
        random.Random(cfg.train.seed).shuffle(order)
        n = int(round(cfg.data.eval_fraction * len(records)))
        held_ids = set(order[:min(n, len(records) - 1)])
        held_records = [r for i, r in enumerate(records) if i in held_ids]
        records = [r for i, r in enumerate(records) if i not in held_ids]
    rule, d = cfg.data.ranking_pairs, cfg.data
    if cfg.loss.name == "kto":
        train, train_rows = encode_kto(tokenizer, to_kto_examples(records, counts, rule), d.max_length, counts,
                                       d.loss_spans, cfg.train.seed)
        held, held_rows = encode_kto(tokenizer, to_kto_examples(held_records, Counter(), rule), d.max_length,
                                     Counter(), d.loss_spans, cfg.train.seed)
        good = sum(e.desirable for e in train)
        if not good or good == len(train):
            raise InputError(f"loss.name=kto needs both desirable and undesirable examples; the training data has "
                             f"{good} desirable and {len(train) - good} undesirable (binary records' label, or a "
                             f"pair's chosen and rejected side; counts: {dict(counts)})", field="data.train")
    else:
        train, train_rows = encode_pairs(tokenizer, to_pairs(records, counts, rule), d.max_length, counts,
                                         d.loss_spans)
        held, held_rows = encode_pairs(tokenizer, to_pairs(held_records, Counter(), rule), d.max_length, Counter(),
                                       d.loss_spans)
    if not train_rows:
        raise InputError(f"no training example fits data.max_length={d.max_length} (or all were skipped: "
                         f"{dict(counts)})", field="data.train")
    report = {**report.as_dict(), "train_pairs": len(train_rows), "heldout_pairs": len(held_rows)}
    if run.main:
        atomic_write_text(run.path / "data_report.json", json.dumps(report, indent=1) + "\n")
    return train, train_rows, held, held_rows, report


def dpo(cfg: DPOConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    if not cfg.model.path:
        raise InputError("model.path is required (an SFT run's final/, a HF folder or a hub id)",
                         field="model.path")
    from ..engine.threads import torch_threads

    with torch_threads(cfg.threads), discard_failed_start(cfg.run.path, resume=resume, overwrite=overwrite):
        return _dpo(cfg, resume, overwrite)


def _dpo(cfg: DPOConfig, resume: bool, overwrite: bool) -> dict[str, Any]:
    from ..data.sft_tokenize import set_chat_template
    from ..models.load import load_causal_lm, load_tokenizer
    from ..models.peft import apply_peft
    from .sft import save_outputs, special_token_ids

    t0 = time.time()
    info = init_distributed()
    run = Run.create(cfg.run.path, cfg, resume=resume, overwrite=overwrite, main=info.main)
    seed_everything(cfg.train.seed)
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    set_chat_template(tokenizer, cfg.data.chat_template)
    pad = pad_id(tokenizer)
    train, train_rows, held, held_rows, report = load_data(cfg, tokenizer, run)
    if cfg.epochs is not None:
        steps = max(1, math.ceil(cfg.epochs * len(train_rows) / cfg.train.batch_size))
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})})
    if run.main:
        atomic_write_text(run.path / "config.yaml", dump_config(cfg))
    model = load_causal_lm(cfg.model.path, dtype=cfg.model.dtype).to(info.device)
    adapter = cfg.peft.method != "none"
    if adapter:
        model = apply_peft(model, cfg.peft, special_token_ids(tokenizer))
    spec = preference_loss(cfg.loss.name)
    share = cfg.data.share_prompt or not spec.paired  # KTO's example and mismatched row share their prompt
    bs = max(1, cfg.train.micro(info.world_size))
    train_w, held_w = [p.weight for p in train], [p.weight for p in held]
    ref: dict[str, torch.Tensor | None] = {"train": None, "eval": None}
    ref_stats: dict[str, int] = {}
    t_ref = time.time()
    if spec.reference:
        used = planned_rows(len(train_rows), cfg.train, info.world_size)
        values, ref_stats = reference_for(
            run.path / REFERENCE_FILE, fingerprint(cfg.model.path, cfg.model.dtype, model, tokenizer),
            [train_rows[i] for i in used] + held_rows,
            lambda rows: compute_reference(model, rows, pad, bs, cfg.data.chunk_tokens, adapter, share),
            write=run.main)
        ref["train"] = torch.full((len(train_rows), 2), math.nan, dtype=torch.float64)
        ref["train"][used] = values[:len(used)]
        ref["eval"] = values[len(used):]
    ref_seconds = round(time.time() - t_ref, 2)
    kto_labels = {k: torch.tensor([e.desirable for e in ex], dtype=torch.bool) if not spec.paired else None
                  for k, ex in (("train", train), ("eval", held))}

    def evaluate(m, step: int) -> dict[str, float]:
        return heldout_metrics(m, cfg.loss, held_rows, held_w, ref["eval"], pad, bs, cfg.data.chunk_tokens, share,
                               kto_labels["eval"])

    before = evaluate(model, 0) if held_rows else {}
    source = PairBatches(train_rows, train_w, cfg.train.micro(info.world_size), pad, info.rank,
                         info.world_size, cfg.train.seed, share)
    trainer = Trainer(model, cfg.train, run, make_loss(cfg.loss, ref["train"], cfg.data.chunk_tokens,
                                                       kto_labels["train"]),
                      source, info, evaluate if held_rows else None, description="dpo")
    result = trainer.fit(resume=resume)
    final = save_outputs(cfg, run, trainer.raw_model, tokenizer)
    summary: dict[str, Any] = {
        "stage": "dpo", "loss": cfg.loss.name, "method": cfg.peft.method,
        "train_pairs": len(train_rows), "heldout_pairs": len(held_rows), "data": report,
        "steps": result["steps"], "train_loss": result["train_loss"], "tokens": result["tokens"],
        "train_seconds": result["train_seconds"],
        "heldout_accuracy_before": before.get("heldout_accuracy"),
        "heldout_loss_before": before.get("heldout_loss"),
        "heldout_accuracy_after": result.get("heldout_accuracy"),
        "heldout_loss_after": result.get("heldout_loss"),
        # implicit-reward accuracy starts at 0.5 for reference losses (every reward is 0, a tie counts half);
        # the log-prob accuracy (chosen more likely than rejected) is comparable before and after
        "heldout_logp_accuracy_before": before.get("heldout_logp_accuracy"),
        "heldout_logp_accuracy_after": result.get("heldout_logp_accuracy"),
        "reference_cache": str(run.path / REFERENCE_FILE) if spec.reference else None,
        **ref_stats, "reference_seconds": ref_seconds,
        **final, "seconds": round(time.time() - t0, 2),
    }
    if not spec.paired:
        summary["train_desirable"] = int(kto_labels["train"].sum())
        summary["train_undesirable"] = len(train) - summary["train_desirable"]
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    run.write_summary(summary)
    return summary
