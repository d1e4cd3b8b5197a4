"""Pre-training recipe: documents -> tokenizer -> packed token shards -> model -> engine -> final/.

Next-token prediction for decoder models (``objective: clm``) or masked-LM for encoders (``objective: mlm``,
``model.arch: bert``). With no ``data.paths`` it trains on the built-in world's corpus.
"""
from __future__ import annotations

import json
import math
import time
from typing import Literal

import torch
from pydantic import Field, model_validator

from ..algos.lm import bits_per_byte, mask_tokens, token_nll_sum
from ..config import Section
from ..data.shards import PackedBatches, TokenShards, eval_windows, write_shards
from ..engine import LossOutput, TrainConfig, Trainer, init_distributed, seed_everything
from ..engine.distributed import barrier
from ..engine.threads import torch_threads
from ..eval.probes import capital_recall
from ..models.factory import ModelConfig, count_params, create_model
from ..models.load import load_causal_lm, load_tokenizer, save_final
from ..runs import Run, RunConfig, discard_failed_start
from ..trackers import LogConfig
from .corpus import load_documents


class DataSection(Section):
    paths: list[str] = Field(default_factory=list, description="files/folders of text; empty: built-in world")
    text_field: str = "text"
    world_seed: int = 0
    clean: bool | None = Field(None, description="run the data-prepare filters and de-duplication first; "
                               "null: yes for files, no for the built-in world (generated clean, and Gopher "
                               "rules would drop its arithmetic and templated prose)")
    val_fraction: float = Field(0.02, gt=0, lt=0.5)
    seq_len: int = Field(256, ge=8)


class TokenizerSection(Section):
    path: str | None = Field(None, description="an existing tokenizer; null: train a byte-level BPE here")
    vocab_size: int = Field(3072, ge=300)


class EvalSection(Section):
    max_windows: int = Field(64, ge=1, description="validation windows scored at each eval")
    samples: list[str] | None = Field(None, description="prompts to sample from; null: starts of val docs")
    sample_tokens: int = Field(48, ge=1)


class PretrainConfig(Section):
    run: RunConfig = RunConfig(name="pretrain")
    log: LogConfig = LogConfig()
    data: DataSection = DataSection()
    tokenizer: TokenizerSection = TokenizerSection()
    model: ModelConfig = ModelConfig()
    objective: Literal["clm", "mlm"] = "clm"
    mask_prob: float = Field(0.15, gt=0, lt=1)
    # the built-in world's measured recipe (docs/demo.md): ~4 minutes on 2 cores, held-out facts learned
    train: TrainConfig = TrainConfig(steps=1100, batch_size=4, warmup_steps=50, weight_decay=0.0,
                                     eval_every=550, log_every=25)
    eval: EvalSection = EvalSection()
    threads: int | None = Field(None, ge=1, description="torch CPU threads for this stage; null: torch's "
                                "default (one per core). 1 is faster for tiny models on a busy machine")

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        if self.objective == "mlm" and self.model.arch != "bert":
            raise ValueError("objective 'mlm' needs model.arch 'bert'")
        if self.objective == "clm" and self.model.arch == "bert":
            raise ValueError("model.arch 'bert' is an encoder: use objective 'mlm'")
        if self.data.seq_len > self.model.max_seq_len:
            raise ValueError(f"data.seq_len {self.data.seq_len} exceeds model.max_seq_len {self.model.max_seq_len}")
        return self

    def resolved(self) -> PretrainConfig:
        """Fill the values derived from the size knob (the learning rate)."""
        if self.train.lr is None:
            return self.model_copy(update={"train": self.train.model_copy(update={"lr": self.model.default_lr()})})
        return self


# ---------------------------------------------------------------------------- data

def prepare_data(cfg: PretrainConfig, run: Run, info):
    """Tokenizer and train/val shards in the run folder (reused on resume)."""
    tok_dir, train_dir, val_dir = run.path / "tokenizer", run.path / "data" / "train", run.path / "data" / "val"
    if run.main and not (train_dir / "index.json").exists():
        clean = cfg.data.clean if cfg.data.clean is not None else bool(cfg.data.paths)
        docs, report = load_documents(cfg.data.paths, cfg.data.text_field, cfg.data.world_seed, clean)
        every = max(2, round(1 / cfg.data.val_fraction))
        val_docs, train_docs = docs[::every], [d for i, d in enumerate(docs) if i % every]
        if cfg.tokenizer.path:
            tokenizer = load_tokenizer(cfg.tokenizer.path)
        else:
            from ..data.tokenizer import train_bpe

            tokenizer = train_bpe(train_docs, vocab_size=cfg.tokenizer.vocab_size)
        tokenizer.save_pretrained(tok_dir)
        write_shards(train_docs, tokenizer, train_dir)
        write_shards(val_docs, tokenizer, val_dir)
        (run.path / "data" / "prepare_report.json").write_text(json.dumps(report, indent=1))
    barrier(info)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir), TokenShards(train_dir), TokenShards(val_dir)


# ---------------------------------------------------------------------------- losses

def clm_loss(model, batch) -> LossOutput:
    logits = model(input_ids=batch["input_ids"]).logits
    loss, n = token_nll_sum(logits, batch["labels"])
    return LossOutput(loss, float(n), batch["input_ids"].numel())


def make_mlm_loss(tokenizer, mask_prob: float, seed: int):
    gen = torch.Generator().manual_seed(seed)  # part of the data stream: reseeded per batch from its content
    specials = list(tokenizer.all_special_ids)

    def mlm_loss(model, batch) -> LossOutput:
        ids = batch["input_ids"]
        gen.manual_seed(seed + int(ids[:, :4].sum()))
        corrupted, labels = mask_tokens(ids.cpu(), tokenizer.mask_token_id, len(tokenizer), specials, gen, mask_prob)
        logits = model(input_ids=corrupted.to(ids.device)).logits
        loss, n = token_nll_sum(logits, labels.to(ids.device))
        return LossOutput(loss, float(n), ids.numel())

    return mlm_loss


# ---------------------------------------------------------------------------- evaluation

def make_evaluate(cfg: PretrainConfig, run: Run, tokenizer, val: TokenShards, byte_lengths: list[int]):
    windows = eval_windows(val, cfg.data.seq_len, cfg.eval.max_windows)
    nbytes = torch.tensor(byte_lengths)
    prompts = cfg.eval.samples or default_sample_prompts(tokenizer, windows)
    mlm = make_mlm_loss(tokenizer, cfg.mask_prob, seed=12345) if cfg.objective == "mlm" else None
    micro = cfg.train.micro(1)
    world = None
    if not cfg.data.paths and cfg.objective == "clm":
        from ..world import World

        world = World(cfg.data.world_seed)

    def evaluate(model, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        total, count, total_bytes = 0.0, 0.0, 0
        for i in range(0, len(windows), micro):
            chunk = windows[i:i + micro].to(device)
            batch = {"input_ids": chunk[:, :-1], "labels": chunk[:, 1:]}
            out = mlm(model, batch) if mlm else clm_loss(model, batch)
            total += float(out.loss)
            count += out.count
            total_bytes += int(nbytes[batch["labels"].cpu()].sum())
        metrics = {"val_loss": total / max(count, 1)}
        if not mlm:
            metrics["val_bpb"] = bits_per_byte(total, total_bytes)
            log_samples(model, tokenizer, prompts, run, step, cfg.eval.sample_tokens)
            if world is not None:  # watch facts being learned (a late, sudden jump on the built-in world)
                metrics["heldout_capital_recall"] = capital_recall(model, tokenizer, world.heldout_countries)
        return metrics

    return evaluate


def default_sample_prompts(tokenizer, windows: torch.Tensor, n: int = 3) -> list[str]:
    bos = tokenizer.bos_token_id
    prompts = []
    for row in windows[:n].tolist():
        start = row.index(bos) + 1 if bos in row[:-8] else 0
        prompts.append(tokenizer.decode(row[start:start + 6]))
    return prompts


def log_samples(model, tokenizer, prompts: list[str], run: Run, step: int, max_new_tokens: int) -> None:
    from ..generation import SamplingParams
    from ..rollout.generate import generate

    outs = generate(model, tokenizer, [tokenizer.bos_token + p for p in prompts],
                    SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0), batch_size=len(prompts))
    for p, group in zip(prompts, outs):
        run.log_sample(step, p, group[0]["text"])


# ---------------------------------------------------------------------------- the recipe

def build_model(cfg: PretrainConfig, tokenizer):
    if cfg.model.init_from:
        return load_causal_lm(cfg.model.init_from)
    return create_model(cfg.model, tokenizer)


def pretrain(cfg: PretrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    with torch_threads(cfg.threads), discard_failed_start(cfg.run.path, resume=resume, overwrite=overwrite):
        return _pretrain(cfg, resume, overwrite)


def _pretrain(cfg: PretrainConfig, resume: bool, overwrite: bool) -> dict:
    t0 = time.time()
    cfg = cfg.resolved()
    info = init_distributed()
    run = Run.create(cfg.run.path, cfg, resume=resume, overwrite=overwrite, main=info.main)
    seed_everything(cfg.train.seed)
    tokenizer, train, val = prepare_data(cfg, run, info)
    seed_everything(cfg.train.seed)  # model init must not depend on how much data prep drew
    model = build_model(cfg, tokenizer)
    from ..data.tokenizer import token_byte_lengths

    source = PackedBatches(train, cfg.data.seq_len, cfg.train.micro(info.world_size), info.rank,
                           info.world_size, seed=cfg.train.seed)
    loss_fn = make_mlm_loss(tokenizer, cfg.mask_prob, cfg.train.seed) if cfg.objective == "mlm" else clm_loss
    evaluate = make_evaluate(cfg, run, tokenizer, val, token_byte_lengths(tokenizer))
    trainer = Trainer(model, cfg.train, run, loss_fn, source, info, evaluate, description="pretrain")
    result = trainer.fit(resume=resume)
    save_final(run, trainer.raw_model, tokenizer)
    summary = {
        "stage": "pretrain", "objective": cfg.objective, "params": count_params(trainer.raw_model),
        "val_loss": result.get("val_loss"), "val_bpb": result.get("val_bpb"),
        "unigram_entropy": train.unigram_entropy(len(tokenizer)), "train_loss": result["train_loss"],
        "tokens": result["tokens"], "steps": result["steps"], "tokens_per_s": result["tokens_per_s"],
        "train_seconds": result["train_seconds"], "seconds": round(time.time() - t0, 2),
        "corpus_tokens": len(train), "final": str(run.final),
    }
    if summary["val_loss"] is not None and not math.isfinite(summary["val_loss"]):
        summary["val_loss"] = None
    run.write_summary(summary)
    return summary
