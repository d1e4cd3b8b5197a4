"""SFT recipe: chat data -> the model's chat template with assistant-only loss -> (packed) batches -> engine.

A base model (a run's ``final/``, a HF folder, a hub id or a ``.gguf`` file) becomes an assistant, by full
fine-tuning or a LoRA/DoRA/QLoRA adapter, with optional protections of what pre-training learned (frozen
embeddings or layers, replay of pre-training text as another data source). On the built-in world it also
evaluates the base model (zero-shot in chat form and k-shot in transcript form) and the tuned one on held-out
facts, stopping format and safety; on the user's own files it holds out ``data.val_fraction`` of them and logs
their loss and a few sampled answers at each evaluation (:mod:`lmforge.stages.sft_val`). Writes
``runs/<name>/``: config.yaml, data_report.json, metrics.jsonl, samples.jsonl, checkpoints/, final/ (HF model,
or the adapter folder), optionally merged/, summary.json.
"""
from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..algos.lm import token_nll_sum
from ..config import Section, dump_config
from ..data.chat import SourceSpec
from ..data.packing import SFTBatches
from ..data.sft_tokenize import set_chat_template, tokenize_examples
from ..engine import LossOutput, TrainConfig, Trainer, init_distributed, seed_everything
from ..errors import InputError
from ..models.chunked import chunk_tokens_field
from ..models.freeze import FreezeEmbeddings
from ..models.peft import PeftSection
from ..models.tokens import pad_id
from ..runs import Run, RunConfig, atomic_write_text, discard_failed_start
from ..trackers import LogConfig


class ModelSection(Section):
    path: str | None = Field(None, description="base model: a run's final/ folder, a HF folder, a hub id or "
                             "a .gguf file")
    tokenizer: str | None = Field(None, description="null: the model's own")
    dtype: Literal["float32", "bfloat16"] = "float32"


class DataSection(Section):
    sources: list[SourceSpec] = Field(default_factory=lambda: [SourceSpec(world="sft"), SourceSpec(world="safety")],
                                      description="the mixture; default: the built-in world's SFT and safety data")
    world_seed: int = Field(0, description="seed of the built-in world (must match the base model's corpus)")
    val_fraction: float = Field(0.05, ge=0, lt=1, description="share of each chat file source held out (seeded "
                                "by train.seed, at least 1 example of a source with 2+) for val_loss and "
                                "samples at each eval; 0: none. The built-in world has its own held-out split")
    max_length: int = Field(512, ge=8, description="tokens per example (and per packed row)")
    truncation: Literal["drop", "truncate"] = Field(
        "drop", description="longer examples: drop them, or keep their first max_length tokens (dropped if no "
        "assistant token is left); both are counted in data_report.json and the log")
    packing: bool = Field(True, description="several examples per row, attention kept inside each")
    chunk_tokens: int | None = chunk_tokens_field(1024)
    packing_attention: Literal["position_ids", "mask_4d"] = Field(
        "position_ids", description="how packed rows are separated: restarting position ids (sdpa/flash "
        "detect them) or an explicit 4-D block-causal mask")
    chat_template: str | None = Field(None, description="null: the tokenizer's; 'chatml', 'lmforge' or a file")
    loss_spans: Literal["auto", "generation", "prefix"] = Field(
        "auto", description="how assistant turns are found: {% generation %} blocks or prefix rendering")


class ProtectSection(Section):
    """Ways to keep pre-trained knowledge (replay is a data source: ``{world: corpus, weight: ...}``)."""
    freeze_embeddings: FreezeEmbeddings = Field(
        "none", description="freeze the (tied) embedding; except_special keeps the chat special-token rows "
        "trainable")
    freeze_layers: int = Field(0, ge=0, description="freeze the first N transformer blocks")


class EvalSection(Section):
    world: bool | None = Field(None, description="evaluate on the built-in world; null: when a source is the world")
    heldout_facts: int | None = Field(None, ge=1, description="held-out fact prompts at the end; null: all")
    seen_facts: int | None = Field(120, ge=0, description="seen-fact prompts at the end; 0: skip")
    per_kind: int | None = Field(40, ge=0, description="held-out dialogues / harmful / false premises; 0: skip")
    during: int = Field(48, ge=1, description="held-out fact prompts generated at each train.eval_every")
    baseline: bool = Field(True, description="score the base model before training (zero-shot chat)")
    nshot: int = Field(3, ge=0, description="k solved examples for the base model's transcript baseline; 0: off")
    max_new_tokens: int = Field(40, ge=1)
    batch_size: int = Field(96, ge=1)
    samples: int = Field(4, ge=0, description="generations per suite logged to samples.jsonl")
    threads: int | None = Field(1, ge=1, description="torch threads while generating (1 is fastest for small "
                                "models on a shared CPU); null: unchanged")


class SFTConfig(Section):
    run: RunConfig = RunConfig(name="sft")
    log: LogConfig = LogConfig()
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    peft: PeftSection = PeftSection()
    protect: ProtectSection = ProtectSection()
    epochs: float | None = Field(2.0, gt=0, description="sets train.steps from the data size; null: use train.steps")
    train: TrainConfig = TrainConfig(steps=100, batch_size=8, warmup_steps=10, weight_decay=0.0, log_every=10)
    eval: EvalSection = EvalSection()
    threads: int | None = Field(None, ge=1, description="torch intra-op threads while this stage runs (restored "
                                "after); null: torch's default. 1 is faster for tiny models on a busy CPU")

    @model_validator(mode="after")
    def _consistent(self) -> SFTConfig:
        if self.protect.freeze_embeddings == "except_special" and self.train.weight_decay > 0:
            raise ValueError("protect.freeze_embeddings=except_special needs train.weight_decay=0 (decay would "
                             "move the frozen rows)")
        if self.peft.method != "none" and self.protect.freeze_embeddings != "none":
            raise ValueError("with an adapter the base is frozen already; use peft.train_special_tokens for "
                             "the special-token rows")
        if self.train.distributed == "fsdp" and self.peft.method != "none":
            raise ValueError(f"train.distributed=fsdp shards full fine-tuning only (peft.method=none); "
                             f"train a {self.peft.method} adapter with train.distributed=ddp")
        if self.train.distributed == "fsdp" and uses_world(self):  # sft_eval generates on rank 0 alone
            raise ValueError("train.distributed=fsdp cannot run the built-in world's evaluation (a sharded "
                             "model must run forward on every process); set eval.world=false or use "
                             "train.distributed=ddp")
        return self

    def with_lr_for(self, model) -> SFTConfig:
        """Fill ``train.lr`` when unset: adapters 2e-3; full fine-tuning 0.3 x the pre-training default for the
        model's width (:func:`lmforge.models.factory.lr_for_width`, lr ∝ 1/sqrt(width)): 1e-3 at width 192
        (measured best on the built-in world), 6e-4 at SmolLM2's 576."""
        from ..models.factory import lr_for_width

        if self.train.lr is not None:
            return self
        width = int(getattr(model.config, "hidden_size", 256) or 256)
        lr = 2e-3 if self.peft.method != "none" else round(0.3 * lr_for_width(width), 6)
        return self.model_copy(update={"train": self.train.model_copy(update={"lr": lr})})


# ---------------------------------------------------------------------------- data

def prepare_data(cfg: SFTConfig, tokenizer, run: Run) -> tuple[list, dict[str, Any], list, list]:
    """Mixture -> tokens + masks, and the validation split (examples and tokens) held out of the file sources;
    the counts (read, used, held out, dropped, truncated) go to data_report.json."""
    from .sft_val import load_mixture_with_val, tokenize_val

    examples, val, counts = load_mixture_with_val(cfg.data.sources, cfg.data.world_seed, cfg.train.seed,
                                                  cfg.data.val_fraction)
    tokens, stats = tokenize_examples(tokenizer, examples, cfg.data.max_length, cfg.data.truncation,
                                      cfg.data.loss_spans)
    val_tokens = tokenize_val(tokenizer, val, cfg.data.max_length, cfg.data.truncation, cfg.data.loss_spans)
    report = {"sources": counts, **stats.as_dict()}
    if val:
        report["val"] = {"examples": len(val), "kept": len(val_tokens)}
    if not tokens:
        raise InputError(f"no example fits data.max_length={cfg.data.max_length} ({stats.dropped_too_long} "
                         "too long); raise it or set data.truncation=truncate", field="data.max_length")
    if run.main:
        atomic_write_text(run.path / "data_report.json", json.dumps(report, indent=1) + "\n")
        run.log_metrics(0, {k: v for k, v in stats.as_dict().items()}, split="data")
        if stats.dropped_too_long or stats.truncated or stats.dropped_no_target:
            print(f"sft data: {stats.dropped_too_long} examples longer than {cfg.data.max_length} tokens dropped, "
                  f"{stats.truncated} truncated, {stats.dropped_no_target} dropped with no assistant token left "
                  f"(data.truncation={cfg.data.truncation}; see data_report.json)", file=sys.stderr, flush=True)
    return tokens, report, val, val_tokens


def special_token_ids(tokenizer) -> list[int]:
    """The chat special tokens (role markers, end of turn, BOS...) whose rows SFT may need to learn."""
    return sorted(set(tokenizer.all_special_ids))


# ---------------------------------------------------------------------------- model

def load_model(cfg: SFTConfig, tokenizer):
    """The base model, quantised for QLoRA, with protections and the adapter applied."""
    from ..models.freeze import apply_freeze
    from ..models.load import load_causal_lm
    from ..models.peft import check_qlora_available, quantization_config

    extra = {}
    if cfg.peft.method == "qlora":
        check_qlora_available()
        extra = {"quantization_config": quantization_config(), "device_map": {"": 0}}
    model = load_causal_lm(cfg.model.path, dtype=cfg.model.dtype, **extra)
    apply_freeze(model, cfg.protect.freeze_embeddings, special_token_ids(tokenizer), cfg.protect.freeze_layers)
    return model


def wrap_adapter(cfg: SFTConfig, model, tokenizer):
    from ..models.peft import apply_peft

    if cfg.peft.method == "none":
        return model
    return apply_peft(model, cfg.peft, special_token_ids(tokenizer))


def sft_loss(model, batch, chunk_tokens: int | None = None) -> LossOutput:
    """Summed NLL of the assistant tokens (labels already shifted per example; IGNORE elsewhere).

    With ``chunk_tokens``, rows are sorted by length and run in chunks of at most that many padded tokens,
    each cut to its own longest row: the same loss and gradients as one padded pass (rows are right-padded
    and no real token attends to padding), without computing the padding of short rows.
    ``use_cache=False`` matters: transformers builds the packed block mask from position ids only when no
    KV cache is created, and ``config.use_cache`` is True for most models even in training.
    """
    from ..models.chunked import length_chunks

    width = batch["input_ids"].shape[1]
    tokens = batch.get("tokens", batch["input_ids"].numel())
    _, chunks = length_chunks(batch.get("lengths"), width, chunk_tokens)
    loss, n = _rows_nll(model, batch, *chunks[0])
    for idx, longest in chunks[1:]:
        part, k = _rows_nll(model, batch, idx, longest)
        loss, n = loss + part, n + k
    return LossOutput(loss, float(n), tokens)


def _rows_nll(model, batch, rows, width: int):
    extra = {}
    if "position_ids" in batch:
        extra["position_ids"] = batch["position_ids"][rows, :width]
    if "attention_mask" in batch:
        mask = batch["attention_mask"]
        extra["attention_mask"] = mask[rows, :width] if mask.dim() == 2 else mask[rows][:, :, :width, :width]
    logits = model(input_ids=batch["input_ids"][rows, :width], use_cache=False, **extra).logits
    return token_nll_sum(logits, batch["labels"][rows, :width])


# ---------------------------------------------------------------------------- the recipe

def uses_world(cfg: SFTConfig) -> bool:
    return cfg.eval.world if cfg.eval.world is not None else any(s.world for s in cfg.data.sources)


def sft(cfg: SFTConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run the recipe (see the module docstring); returns the summary also written to summary.json."""
    if not cfg.model.path:
        raise InputError("model.path is required (a run's final/ folder, a HF folder, a hub id or a .gguf)",
                         field="model.path")
    from ..engine.threads import torch_threads

    with torch_threads(cfg.threads), discard_failed_start(cfg.run.path, resume=resume, overwrite=overwrite):
        return _sft(cfg, resume, overwrite)


def _sft(cfg: SFTConfig, resume: bool, overwrite: bool) -> dict[str, Any]:
    from ..models.load import load_tokenizer
    from .sft_eval import baseline_eval, make_evaluate
    from .sft_val import combine, make_val_evaluate, val_loss

    t0 = time.time()
    info = init_distributed()
    run = Run.create(cfg.run.path, cfg, resume=resume, overwrite=overwrite, main=info.main)
    seed_everything(cfg.train.seed)
    tokenizer = load_tokenizer(cfg.model.tokenizer or cfg.model.path)
    set_chat_template(tokenizer, cfg.data.chat_template)
    tokens, report, val, val_tokens = prepare_data(cfg, tokenizer, run)
    source = SFTBatches(tokens, cfg.data.max_length, cfg.train.micro(info.world_size), pad_id(tokenizer),
                        cfg.data.packing, info.rank, info.world_size, cfg.train.seed,
                        mask_4d=cfg.data.packing_attention == "mask_4d")
    if cfg.epochs is not None:
        steps = max(1, math.ceil(cfg.epochs * source.n / cfg.train.batch_size))
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})})
    seed_everything(cfg.train.seed)
    model = load_model(cfg, tokenizer)
    cfg = cfg.with_lr_for(model)
    if run.main:  # the resolved steps and lr, as trained
        atomic_write_text(run.path / "config.yaml", dump_config(cfg))
    world = uses_world(cfg)
    summary: dict[str, Any] = {"stage": "sft", "method": cfg.peft.method}
    if world and info.main:
        summary.update(baseline_eval(cfg, run, model, tokenizer))
    if val_tokens and cfg.eval.baseline and info.main:
        summary["base_val_loss"] = val_loss(model, val_tokens, pad_id(tokenizer), chunk_tokens=cfg.data.chunk_tokens)
    model = wrap_adapter(cfg, model, tokenizer)
    evaluate = combine(make_evaluate(cfg, run, tokenizer) if world else None,
                       make_val_evaluate(cfg, run, tokenizer, val, val_tokens, pad_id(tokenizer))
                       if val_tokens else None)
    loss_fn = functools.partial(sft_loss, chunk_tokens=cfg.data.chunk_tokens)
    trainer = Trainer(model, cfg.train, run, loss_fn, source, info, evaluate, description="sft")
    t_train = time.time()
    result = trainer.fit(resume=resume)
    train_and_eval_s = time.time() - t_train
    from ..models.factory import count_params

    params = count_params(trainer.raw_model)
    trainable = count_params(trainer.raw_model, trainable_only=True)
    final = save_outputs(cfg, run, trainer.raw_model, tokenizer)
    summary.update({k: v for k, v in result.items() if not k.startswith("base_")})
    summary.update({
        "examples": report["kept"], "val_examples": len(val_tokens), "rows": source.n, "row_fill": round(source.fill(), 3),
        "dropped_too_long": report["dropped_too_long"], "truncated": report["truncated"],
        "epochs": cfg.epochs, "lr": cfg.train.lr, "params": params, "trainable_params": trainable,
        "train_and_eval_seconds": round(train_and_eval_s, 2), "seconds": round(time.time() - t0, 2), **final,
    })
    run.write_summary(summary)
    return summary


def save_outputs(cfg: SFTConfig, run: Run, model, tokenizer) -> dict[str, str]:
    """final/ = the tuned model (full FT) or the adapter folder; merged/ = a plain merged model if asked."""
    from ..models.load import save_final, save_hf
    from ..models.peft import save_adapter

    if cfg.peft.method == "none":
        save_final(run, model, tokenizer)
        return {"final": str(run.final), "model_dir": str(run.final)}
    out = {"final": str(run.final), "adapter": str(run.final)}
    if run.main:
        tmp = run.staging_dir("final")
        save_adapter(model, tokenizer, tmp, str(Path(cfg.model.path).resolve()) if Path(cfg.model.path).exists()
                     else cfg.model.path)
        run.commit_dir(tmp, "final")
        if cfg.peft.merge:
            tmp = run.staging_dir("merged")
            save_hf(model.merge_and_unload(), tokenizer, tmp)
            run.commit_dir(tmp, "merged")
            out["model_dir"] = str(run.path / "merged")
    return out


# ---------------------------------------------------------------------------- the demo

def base_run_seeds(base_model_dir: str) -> tuple[int, int]:
    """(world seed, training seed) of the pre-training run that wrote ``base_model_dir`` (its parent's
    config.yaml), so SFT data and evaluation use the same world as the base model; (0, 0) if unknown."""
    import yaml

    path = Path(base_model_dir).parent / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
        return int(data["data"]["world_seed"]), int(data["train"]["seed"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return 0, 0


def demo_config(base_model_dir: str, run_root: str) -> SFTConfig:
    """The measured recipe for the built-in world (docs/sft.md has the table of what was tried).

    Full fine-tuning with the tied embedding frozen except the chat special-token rows (what keeps the facts
    the base only read in prose: without it held-out accuracy fell to ~0.2), packed 256-token rows, 4 rows
    per step, lr 1e-3, 4 epochs (~210 steps); fewer epochs left refusals unlearned, LoRA underfit. One torch
    thread: on the shared 2-core machine a training step took 0.68 s with 1 thread and 1.8-3.5 s with 2.
    """
    world_seed, seed = base_run_seeds(base_model_dir)
    return SFTConfig(
        run=RunConfig(name="sft", root=run_root),
        model=ModelSection(path=base_model_dir),
        data=DataSection(world_seed=world_seed, max_length=256),
        protect=ProtectSection(freeze_embeddings="except_special"),
        epochs=4.0,
        train=TrainConfig(steps=1, batch_size=4, lr=1e-3, warmup_steps=10, weight_decay=0.0, log_every=10,
                          eval_every=100, seed=seed),
        threads=1,  # a 2.4M-parameter model: 1 thread was 2.5-5x faster than 2 on the shared 2-core machine
    )
