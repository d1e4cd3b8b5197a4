"""ReFT recipe (``lmforge reft``): reasoning with reinforced fine-tuning (Luong et al. 2024).

A config over two existing stages, not a new trainer:

1. **Warm-up** (``sft:``, the ``lmforge sft`` recipe): supervised fine-tuning on worked solutions (question ->
   step-by-step solution ending in ``#### N``).
2. **RL** (``rl:``, the ``lmforge grpo`` / ``ppo`` / ``rloo`` recipe) from the warmed-up model, on the same
   questions, sampling ``rl.rl.group_size`` reasoning paths per question, the reward a verifiable one
   (default ``lmforge.rewards.builtin:exact_answer``; any ``module:function``), groups whose rewards are all
   equal masked out of the loss (``rl.rl.drop_equal_groups``, DAPO).

Evaluated on the held-out problems before anything (``accuracy_base``), after the warm-up (``accuracy_sft``)
and after RL (``accuracy``): greedy accuracy, unparsable answers, and from ``eval.k`` samples pass@k and
majority-vote accuracy (:mod:`lmforge.eval.reasoning`).

Writes ``runs/<name>/``: config.yaml, data/ (sft.jsonl, rl_prompts.jsonl, eval.jsonl), sft/ and rl/ (the two
stages' own run folders), eval_base.json, eval_sft.json, eval_rl.json, summary.json. ``--resume`` reuses every
finished part (a stage with a summary.json, an evaluation written) and resumes an interrupted stage.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section
from ..data.chat import SourceSpec
from ..errors import InputError
from ..generation import SamplingParams
from ..rewards.config import RewardSection, RewardTerm
from ..rl.config import RLSection
from ..runs import Run, RunConfig, atomic_write_text
from .reft_data import ReftDataSection, load_problems, write_data
from .rl import RLConfig
from .sft import DataSection, EvalSection, SFTConfig

EXACT = "lmforge.rewards.builtin:exact_answer"


class ReftModelSection(Section):
    path: str | None = Field(None, description="the model to start from: a base or chat model (a run's final/, "
                             "a HF folder, a hub id, a .gguf file)")
    dtype: Literal["float32", "bfloat16"] = "float32"


class ReftEvalSection(Section):
    k: int = Field(4, ge=0, description="samples per problem for pass@k and majority vote; 0: greedy only")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the k samples")
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(64, ge=1)
    seed: int = 0
    base: bool = Field(True, description="also evaluate the starting model (accuracy_base)")


def _default_sft() -> SFTConfig:
    return SFTConfig(data=DataSection(sources=[SourceSpec(path="data/sft.jsonl")], max_length=256, val_fraction=0),
                     eval=EvalSection(world=False), epochs=3.0)


def _default_rl() -> RLConfig:
    return RLConfig(reward=RewardSection(terms=[RewardTerm(kind="function", function=EXACT)]),
                    rl=RLSection(algorithm="grpo", group_size=4, prompts_per_rollout=16, rollouts=10),
                    sampling=SamplingParams(max_new_tokens=128, temperature=1.0, top_p=1.0, seed=0))


class ReftConfig(Section):
    run: RunConfig = RunConfig(name="reft")
    model: ReftModelSection = ReftModelSection()
    data: ReftDataSection = ReftDataSection()
    sft: SFTConfig = Field(default_factory=_default_sft, description="the warm-up (`lmforge sft` keys); "
                           "model, run and data.sources are set by the recipe")
    rl: RLConfig = Field(default_factory=_default_rl, description="the RL stage (`lmforge grpo` keys); "
                         "model.path, run and prompts.source are set by the recipe")
    eval: ReftEvalSection = ReftEvalSection()
    skip_sft: bool = Field(False, description="RL straight from model.path (the 'RL without warm-up' ablation)")
    skip_rl: bool = Field(False, description="stop after the warm-up (the 'SFT only' baseline)")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads for the whole recipe")

    @model_validator(mode="after")
    def _recipe_owns(self) -> ReftConfig:
        if self.sft.model.path is not None:
            raise ValueError("sft.model.path is set by the recipe (model.path, the starting model)")
        if self.rl.model.path is not None:
            raise ValueError("rl.model.path is set by the recipe (the warmed-up model)")
        if self.skip_sft and self.skip_rl:
            raise ValueError("skip_sft and skip_rl together leave nothing to train")
        return self


# ---------------------------------------------------------------------------- the recipe

def reft_train(cfg: ReftConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    if not cfg.model.path:
        raise InputError("model.path is required (a base or chat model)", field="model.path")
    from ..engine.threads import torch_threads

    with torch_threads(cfg.threads):
        return _reft(cfg, resume, overwrite)


def _stage_done(path: Path) -> dict[str, Any] | None:
    f = path / "summary.json"
    return json.loads(f.read_text()) if f.exists() else None


def _evaluate(cfg: ReftConfig, run: Run, name: str, model_path: str, problems: list[dict],
              resume: bool) -> dict[str, Any]:
    """The evaluation of one model on the evaluation problems, written to ``eval_<name>.json``."""
    out_file = run.path / f"eval_{name}.json"
    if resume and out_file.exists():
        return json.loads(out_file.read_text())
    from ..data.sft_tokenize import set_chat_template
    from ..eval.reasoning import evaluate_answers
    from ..models.peft import load_any

    t0 = time.time()
    model, tokenizer = load_any(model_path, cfg.model.dtype)
    if name == "base" or not getattr(tokenizer, "chat_template", None):
        set_chat_template(tokenizer, cfg.sft.data.chat_template)  # as the warm-up renders the questions
    e = cfg.eval
    result = evaluate_answers(model, tokenizer, [p["messages"] for p in problems], [p["answer"] for p in problems],
                              kinds=[p["kind"] for p in problems], k=e.k, max_new_tokens=e.max_new_tokens,
                              temperature=e.temperature, batch_size=e.batch_size, seed=e.seed)
    result["model"] = model_path
    result["seconds"] = round(time.time() - t0, 2)
    atomic_write_text(out_file, json.dumps(result, indent=1) + "\n")
    return result


def _world_seed(cfg: ReftConfig) -> int:
    if cfg.data.world.seed is not None:
        return cfg.data.world.seed
    from .sft import base_run_seeds

    return base_run_seeds(cfg.model.path)[0]


def _reft(cfg: ReftConfig, resume: bool, overwrite: bool) -> dict[str, Any]:
    from .rl import rl_train
    from .sft import sft

    t0 = time.time()
    # the data first: a bad file stops before any run folder exists
    train, ev = load_problems(cfg.data, _world_seed(cfg), need_solution=not cfg.skip_sft)
    run = Run.create(cfg.run.path, cfg, resume=resume, overwrite=overwrite)
    files = write_data(run.path / "data", train, ev)
    summary: dict[str, Any] = {"stage": "reft", "train_problems": len(train), "eval_problems": len(ev),
                               "eval_kinds": sorted({p["kind"] for p in ev})}
    seconds: dict[str, float] = {}
    evals: dict[str, dict[str, Any]] = {}
    if cfg.eval.base:
        evals["base"] = _evaluate(cfg, run, "base", cfg.model.path, ev, resume)

    model_path = cfg.model.path
    if not cfg.skip_sft:
        s = cfg.sft
        sft_cfg = s.model_copy(update={
            "run": RunConfig(name="sft", root=str(run.path)),
            "model": s.model.model_copy(update={"path": cfg.model.path, "dtype": cfg.model.dtype}),
            "data": s.data.model_copy(update={"sources": [SourceSpec(path=str(files["sft"]))]}),
            "eval": s.eval.model_copy(update={"world": False}),
            # RL starts from plain weights: an adapter warm-up is merged
            "peft": s.peft.model_copy(update={"merge": True}) if s.peft.method != "none" else s.peft,
        })
        t = time.time()
        done = _stage_done(sft_cfg.run.path) if resume else None
        result = done or sft(sft_cfg, resume=resume and sft_cfg.run.path.exists(), overwrite=overwrite)
        seconds["sft"] = round(time.time() - t, 2)
        summary["sft"] = {k: result.get(k) for k in ("steps", "train_loss", "examples", "seconds")}
        model_path = result["model_dir"]
        evals["sft"] = _evaluate(cfg, run, "sft", model_path, ev, resume)

    if not cfg.skip_rl:
        r = cfg.rl
        rl_cfg = r.model_copy(update={
            "run": RunConfig(name="rl", root=str(run.path)),
            "model": r.model.model_copy(update={"path": model_path, "dtype": cfg.model.dtype}),
            "prompts": r.prompts.model_copy(update={"source": str(files["rl"])}),
        })
        t = time.time()
        done = _stage_done(rl_cfg.run.path) if resume else None
        result = done or rl_train(rl_cfg, resume=resume and rl_cfg.run.path.exists(), overwrite=overwrite)
        seconds["rl"] = round(time.time() - t, 2)
        summary["rl"] = {k: result.get(k) for k in ("stage", "steps", "rollouts", "reward_mean_start",
                                                     "reward_mean_end", "kl_ref_end", "seconds")}
        # the share of responses whose group's rewards differed (the rest were masked out: drop_equal_groups)
        shares = [m["loss_rows_share"] for m in Run(rl_cfg.run.path).read_metrics() if "loss_rows_share" in m]
        summary["rl"]["loss_rows_share_mean"] = sum(shares) / len(shares) if shares else None
        evals["rl"] = _evaluate(cfg, run, "rl", result["final"], ev, resume)

    summary.update(report(evals))
    summary["eval_seconds"] = {k: v.get("seconds") for k, v in evals.items()}
    summary["stage_seconds"] = seconds
    summary["seconds"] = round(time.time() - t0, 2)
    run.write_summary(summary)
    return summary


def report(evals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers: per evaluated model NAME (base, sft, rl) ``accuracy_NAME``, ``pass_at_k_NAME``,
    ``majority_accuracy_NAME``, ``unparsable_NAME`` and ``accuracy_by_kind_NAME``; and ``accuracy``,
    ``pass_at_k``, ``majority_accuracy`` of the last model trained (rl, else sft)."""
    out: dict[str, Any] = {}
    for name, e in evals.items():
        out[f"accuracy_{name}"] = e["accuracy"]
        for key in ("pass_at_k", "majority_accuracy"):
            if key in e:
                out[f"{key}_{name}"] = e[key]
        out[f"unparsable_{name}"] = e["unparsable"]
        out[f"accuracy_by_kind_{name}"] = e.get("accuracy_by_kind")
    last = next((n for n in ("rl", "sft") if n in evals), None)
    if last is not None:
        out["accuracy"] = evals[last]["accuracy"]
        for key in ("pass_at_k", "majority_accuracy"):
            if key in evals[last]:
                out[key] = evals[last][key]
    if evals:
        out["k"] = next(iter(evals.values())).get("k")
    return out
