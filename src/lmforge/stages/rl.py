"""RL recipe (``lmforge ppo | grpo | rloo``): a chat model answers prompts, a reward scores the answers, and
PPO / GRPO / RLOO moves the policy toward higher reward while a KL term keeps it near the starting model.

One recipe over the one engine: :class:`lmforge.rl.source.RLSource` runs the rollout phase inside the engine's
batch source, :func:`lmforge.rl.loss.make_loss` is the loss, and the engine does the rest (accumulation,
global normalisation, checkpoints with the rollout buffer, exact ``--resume``, DDP). See docs/rl.md.

Bad input stops before training: a policy without a chat template, no prompt that fits the context (longer
ones are dropped and counted), a reward that cannot be built (missing model, head or statistics; a
``module:function`` that does not exist).

Writes ``runs/<name>/``: config.yaml, prompts_report.json, metrics.jsonl (per step; rollout metrics on the step
that first trains on a rollout), samples.jsonl, checkpoints/, final/ (the policy: HF model, or the adapter),
value_head.pt or critic/ (PPO), summary.json.
"""
from __future__ import annotations

import json
import math
import time
import types
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from ..config import Section, dump_config
from ..engine import TrainConfig, Trainer, init_distributed, seed_everything
from ..errors import InputError
from ..generation import SamplingParams
from ..models.freeze import FreezeEmbeddings
from ..models.peft import PeftSection
from ..rewards import RewardSection, build_reward
from ..rewards.build import check_routes
from ..rl.config import RLSection
from ..runs import Run, RunConfig, atomic_write_text, discard_failed_start
from ..trackers import LogConfig
from .generate import WorldPromptsSection


class ModelSection(Section):
    path: str | None = Field(None, description="the policy to start from (an SFT run's final/, a HF folder, a "
                             "hub id or a .gguf file)")
    dtype: Literal["float32", "bfloat16"] = "float32"
    freeze_embeddings: FreezeEmbeddings = Field("none", description="full fine-tuning: freeze the input "
                                                "embedding (except_special: all but the special tokens' rows), "
                                                "as SFT's protect.freeze_embeddings, to keep what it knows")


class PromptsSection(Section):
    source: str = Field("world", description="'world' (the built-in world's prompts) or a prompt file of any "
                        "shape lmforge.data.prompt_files reads ({'prompt': text | messages, 'meta': {...}}, "
                        "{'messages': [...]}, Alpaca, GSM8K-style 'question', AdvBench CSV, text lines)")
    world: WorldPromptsSection = WorldPromptsSection(split="train", n=None)
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")
    on_too_long: Literal["drop", "error"] = Field("drop", description="a prompt whose tokens + "
                                                  "sampling.max_new_tokens exceed the context: drop and count "
                                                  "it, or stop naming it")


RL_SAMPLING = SamplingParams(max_new_tokens=48, temperature=1.0, top_p=1.0, seed=0)


class RLConfig(Section):
    run: RunConfig = RunConfig(name="rl")
    log: LogConfig = LogConfig()
    model: ModelSection = ModelSection()
    peft: PeftSection = PeftSection()
    prompts: PromptsSection = PromptsSection()
    reward: RewardSection = RewardSection()
    sampling: SamplingParams = Field(RL_SAMPLING, description="rollout sampling (n is rl.group_size; top_p "
                                     "1 keeps the ratio's distribution the sampler's)")
    rl: RLSection = RLSection()
    train: TrainConfig = TrainConfig(steps=1, batch_size=16, lr=1e-5, schedule="constant", warmup_steps=0,
                                     log_every=1, grad_clip=1.0, betas=(0.9, 0.95))
    threads: int | None = Field(None, ge=1, description="torch intra-op threads; null: torch's choice (1 is "
                                "fastest for tiny models on a shared CPU, see engine.threads)")

    @model_validator(mode="after")
    def _check(self) -> RLConfig:
        if self.sampling.temperature <= 0:
            raise ValueError("sampling.temperature must be > 0: RL samples (greedy responses have no ratio)")
        if self.train.distributed == "fsdp":
            raise ValueError("train.distributed=fsdp is not supported by RL yet (the rollout generates with the "
                             "unsharded policy); use ddp")
        rows = self.rl.prompts_per_rollout * self.rl.group_size
        if rows % self.train.batch_size:
            raise ValueError(f"a rollout has {rows} responses (rl.prompts_per_rollout x rl.group_size), not a "
                             f"multiple of train.batch_size={self.train.batch_size} (one minibatch per step)")
        return self

    def with_steps(self) -> RLConfig:
        """train.steps = rollouts x ppo_epochs x minibatches per rollout."""
        rows = self.rl.prompts_per_rollout * self.rl.group_size
        steps = self.rl.rollouts * self.rl.ppo_epochs * rows // self.train.batch_size
        return self.model_copy(update={"train": self.train.model_copy(update={"steps": steps})})


# ---------------------------------------------------------------------------- prompts

def read_prompts(cfg: RLConfig) -> list[dict[str, Any]]:
    """``[{"messages", "meta"}]`` from the world or a prompt file (the one reader, data.prompt_files)."""
    if cfg.prompts.source == "world":
        from ..world import World

        w = cfg.prompts.world
        items = World(w.seed).eval_prompts(split=w.split, kinds=w.kinds, n=w.n, seed=w.sample_seed)
        out = [{"messages": it["messages"], "meta": it} for it in items]
    else:
        from ..data.prompt_files import read_prompt_file

        out = [it.as_prompt() for it in read_prompt_file(cfg.prompts.source, cfg.prompts.limit)]
    return out[:cfg.prompts.limit] if cfg.prompts.limit else out


def fit_prompts(prompts: list[dict[str, Any]], tokenizer, context: int | None, max_new: int | None,
                rule: str) -> tuple[list[dict[str, Any]], int]:
    """Prompts whose tokens plus the generation budget fit ``context``; (kept, dropped) or an error."""
    from ..rollout.generate import prompt_ids

    if not context:
        return prompts, 0
    budget = context - (max_new or 0)
    lengths = [len(ids) for ids in prompt_ids(tokenizer, [p["messages"] for p in prompts])]
    kept = [p for p, n in zip(prompts, lengths) if n <= budget]
    if len(kept) < len(prompts) and rule == "error":
        i = next(i for i, n in enumerate(lengths) if n > budget)
        raise InputError(f"prompt {i + 1} has {lengths[i]} tokens; with sampling.max_new_tokens={max_new} it "
                         f"exceeds the model's context of {context}", field="prompts")
    if not kept:
        raise InputError(f"no prompt fits the context of {context} tokens with sampling.max_new_tokens="
                         f"{max_new}", field="prompts")
    return kept, len(prompts) - len(kept)


# ---------------------------------------------------------------------------- the recipe

def rl_train(cfg: RLConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    if not cfg.model.path:
        raise InputError("model.path is required (an SFT run's final/, a HF folder or a hub id)",
                         field="model.path")
    from ..engine.threads import torch_threads

    with discard_failed_start(cfg.run.path, resume=resume, overwrite=overwrite), torch_threads(cfg.threads):
        return _rl(cfg, resume, overwrite)


def _context(model) -> int | None:
    c = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(c, "max_position_embeddings", None)


def _no_dropout(model) -> None:
    """Dropout off: the old log-probs (eval mode) and the loss's (train mode) must be the same function."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def _rl(cfg: RLConfig, resume: bool, overwrite: bool) -> dict[str, Any]:
    from ..models.load import load_causal_lm, load_tokenizer
    from ..models.peft import apply_peft
    from ..models.tokens import pad_id
    from ..rl.loss import make_loss
    from ..rl.policy import PolicyWithValue, Reference, end_of_turn_id, reward_model_critic
    from ..rl.source import RLSource
    from .sft import special_token_ids

    t0 = time.time()
    info = init_distributed()
    cfg = cfg.with_steps()
    rl = cfg.rl
    if rl.prompts_per_rollout % info.world_size:
        raise InputError(f"rl.prompts_per_rollout={rl.prompts_per_rollout} does not split over "
                         f"{info.world_size} processes", field="rl.prompts_per_rollout")
    tokenizer = load_tokenizer(cfg.model.path)
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the policy's tokenizer has no chat template; RL needs a chat (SFT) model",
                         file=cfg.model.path)
    all_prompts = read_prompts(cfg)
    check_routes(cfg.reward, [p.get("meta") for p in all_prompts])  # a `when` that selects no prompt: a typo
    reward = build_reward(cfg.reward)  # loads and checks every term before any training
    run = Run.create(cfg.run.path, cfg, resume=resume, overwrite=overwrite, main=info.main)
    if run.main:
        atomic_write_text(run.path / "config.yaml", dump_config(cfg))
    seed_everything(cfg.train.seed)
    policy = load_causal_lm(cfg.model.path, dtype=cfg.model.dtype)
    _no_dropout(policy)
    if cfg.model.freeze_embeddings != "none":
        from ..models.freeze import apply_freeze

        apply_freeze(policy, cfg.model.freeze_embeddings, special_token_ids(tokenizer))
    prompts, dropped = fit_prompts(all_prompts, tokenizer, _context(policy), cfg.sampling.max_new_tokens,
                                   cfg.prompts.on_too_long)
    if dropped:  # a routed term whose prompts are all too long would score nothing
        check_routes(cfg.reward, [p.get("meta") for p in prompts], f"{dropped} longer than the context dropped")
    report = {"prompts": len(prompts), "dropped_too_long": dropped}
    if run.main:
        atomic_write_text(run.path / "prompts_report.json", json.dumps(report, indent=1) + "\n")
    adapter = cfg.peft.method != "none"
    if adapter:
        policy = apply_peft(policy, cfg.peft, special_token_ids(tokenizer))
    reference = Reference(policy, adapter, needed=rl.uses_reference)
    critic_model = None
    if rl.uses_critic and rl.critic == "reward_model":
        path = rl.critic_path or next((t.path for t in cfg.reward.terms if t.kind == "model"), None)
        if path is None:
            raise InputError("critic 'reward_model' needs rl.critic_path or a reward term of kind model",
                             field="rl.critic_path")
        critic_model = reward_model_critic(path, tokenizer, cfg.model.dtype)
    model = PolicyWithValue(policy, rl.critic if rl.uses_critic else "none", critic_model, rl.value_lr)
    model.to(info.device)
    if reference.copy is not None:
        reference.copy.to(info.device)
    micro = cfg.train.micro(info.world_size)
    source = RLSource(model, reference, tokenizer, reward, prompts, rl, cfg.sampling, micro,
                      end_of_turn_id(tokenizer), pad_id(tokenizer), info.rank, info.world_size, cfg.train.seed,
                      run)
    source.minibatch_rows = cfg.train.batch_size
    trainer = Trainer(model, cfg.train, run, make_loss(rl, cfg.sampling.temperature, cfg.sampling.max_new_tokens),
                      source, info, description=rl.algorithm)
    result = trainer.fit(resume=resume)
    final = save_policy(cfg, run, model, tokenizer)
    metrics = run.read_metrics()
    last = {k: v for m in metrics for k, v in m.items()}  # the latest value of every metric
    summary: dict[str, Any] = {
        "stage": rl.algorithm, "method": cfg.peft.method, "critic": rl.critic if rl.uses_critic else None,
        "prompts": report, "rollouts": source.rollout, "steps": result["steps"], "tokens": result["tokens"],
        "train_loss": result["train_loss"], "train_seconds": result["train_seconds"],
        "reward_mean_start": source.reward_first, "reward_mean_end": source.reward_last,
        "kl_ref_end": last.get("kl_ref"), "response_length_end": last.get("response_length"),
        "kl_coef_end": source.kl.value, "weight_bytes": memory_layout(model, reference, reward),
        **final, "seconds": round(time.time() - t0, 2),
    }
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    run.write_summary(summary)
    return summary


def _bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) if module is not None else 0


def memory_layout(model, reference, reward) -> dict[str, int]:
    """Weight bytes held per role, against the naive layout of four full models (policy, reference, critic,
    reward model, each the policy's size): what LoRA's adapter-off reference and a shared critic save."""
    terms = getattr(reward, "terms", [reward])
    rm = sum(_bytes(getattr(t, "model", None)) for t in terms)
    policy = _bytes(model.policy)
    critic = _bytes(getattr(model, "value_head", None)) + _bytes(getattr(model, "critic", None))
    ref = _bytes(reference.copy)
    return {"policy": policy, "reference": ref, "critic": critic, "reward_models": rm,
            "total": policy + ref + critic + rm, "naive_four_models": 4 * policy}


def save_policy(cfg: RLConfig, run: Run, model, tokenizer) -> dict[str, str]:
    """final/ = the policy (plain HF model, or the adapter folder); PPO's critic beside it (value_head.pt, or
    critic/ as a sequence-classification folder)."""
    from ..models.load import save_hf
    from .sft import save_outputs

    shim = types.SimpleNamespace(peft=cfg.peft, model=cfg.model)
    out = save_outputs(shim, run, model.policy, tokenizer)
    if run.main and model.critic_kind == "shared":
        tmp = run.path / ".value_head.pt.tmp"
        torch.save(model.value_head.state_dict(), tmp)
        tmp.replace(run.path / "value_head.pt")
        out["value_head"] = str(run.path / "value_head.pt")
    elif run.main and model.critic_kind == "reward_model":
        tmp = run.staging_dir("critic")
        save_hf(model.critic, None, tmp)
        out["critic"] = str(run.commit_dir(tmp, "critic"))
    return out
