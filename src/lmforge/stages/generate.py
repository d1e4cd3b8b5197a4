"""Generate recipe: K responses per prompt, written as a labeling batch (``batch.jsonl``).

Prompts come from a prompt file of any shape :func:`lmforge.data.prompt_files.read_prompt_file` reads (JSON
lines with ``prompt`` / ``messages`` / ``instruction`` / ``question`` / ``goal``, CSV, Alpaca JSON, text lines;
a trailing assistant turn is dropped and kept as ``meta.reference``) or from the built-in world
(``prompts: world``). Responses come
from a model (sampled with the recorded settings) or, with ``model: world``, from the world's graded candidate
responses (no model needed: the loop runs on a laptop in seconds).

Writes ``<run.root>/<run.name>/``: ``config.yaml``, ``batch.jsonl`` (see :mod:`lmforge.feedback.batchfile`),
``summary.json``. Load the batch with ``lmforge label add-batch``.
"""
from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section
from ..data.prompt_files import read_prompt_file
from ..data.readers import write_jsonl_atomic
from ..errors import InputError
from ..feedback.batchfile import BATCH_FILE, BatchItem
from ..generation.params import SamplingParams
from ..runs import Run, RunConfig

WORLD = "world"


class WorldPromptsSection(Section):
    seed: int = Field(0, description="the world's seed (which facts exist)")
    split: Literal["train", "heldout"] = Field("train", description="train: preference data to train on; "
                                                                     "heldout: prompts kept for evaluation")
    kinds: list[str] | None = Field(None, description="prompt kinds to draw; null: all")
    n: int | None = Field(32, ge=1, description="how many prompts; null: all")
    sample_seed: int = Field(0, description="seed for drawing the prompts")


# the generate stage's defaults: K samples per prompt, so temperature > 0 (greedy would repeat one response)
GENERATE_SAMPLING = SamplingParams(max_new_tokens=128, temperature=1.0, top_p=0.95, logprobs=False)


class GenerateConfig(Section):
    run: RunConfig = RunConfig(name="generate")
    model: str = Field(description="model folder, .gguf file or hub id; 'world': the built-in world's graded "
                                   "candidate responses (write ./world for a folder of that name)")
    prompts: str = Field(WORLD, description="a prompt file (.jsonl/.json/.parquet/.csv/.txt, a dataset folder; "
                         "lmforge.data.prompt_files), or 'world'")
    k: int = Field(4, ge=2, le=26, description="responses per prompt")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")
    world: WorldPromptsSection = WorldPromptsSection()
    sampling: SamplingParams = Field(GENERATE_SAMPLING, description="sampling settings (n is k)")
    batch_size: int = Field(8, ge=1, description="prompts per generate call")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, ...")

    @model_validator(mode="after")
    def _consistent(self) -> GenerateConfig:
        if self.model == WORLD and self.prompts != WORLD:
            raise ValueError("model 'world' writes the world's candidate responses, so prompts must be 'world'")
        if self.model != WORLD and self.sampling.temperature == 0:
            raise ValueError(f"greedy decoding (sampling.temperature=0) gives {self.k} identical responses; "
                             "set sampling.temperature > 0")
        if self.sampling.n not in (1, self.k):
            raise ValueError("sampling.n: the number of responses per prompt is k; leave sampling.n unset")
        return self


def _file_prompts(cfg: GenerateConfig) -> list[dict[str, Any]]:
    """The prompt file through the one prompt reader (any shape it accepts; bad records and repeated ids stop
    with file:line)."""
    return [it.as_prompt() for it in read_prompt_file(cfg.prompts, cfg.limit)]


def _world_items(cfg: GenerateConfig, world) -> list[dict[str, Any]]:
    w = cfg.world
    items = world.eval_prompts(split=w.split, kinds=w.kinds, n=w.n, seed=w.sample_seed)
    return items[:cfg.limit] if cfg.limit else items


def _world_prompt(item: dict[str, Any]) -> dict[str, Any]:
    """A world item as a batch prompt; ``meta`` keeps what the simulated labeler needs to rebuild it."""
    return {"id": str(item["id"]), "messages": item["messages"],
            "meta": {k: item.get(k) for k in ("kind", "category", "split", "reference", "meta")}}


def _model_responses(cfg: GenerateConfig, prompts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    import torch

    from ..models.load import load_causal_lm, load_tokenizer
    from ..rollout.generate import generate

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(cfg.model)
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError("the tokenizer has no chat template; generate needs a chat (SFT) model", file=cfg.model)
    model = load_causal_lm(cfg.model, cfg.dtype).to(device)
    sampling = cfg.sampling.model_copy(update={"n": cfg.k})
    return generate(model, tokenizer, [p["messages"] for p in prompts], sampling, batch_size=cfg.batch_size)


def _world_responses(cfg: GenerateConfig, world, items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    rng = random.Random(cfg.sampling.seed)
    return [[{"text": t} for t in world.candidate_responses(item, cfg.k, rng)] for item in items]


def generate_batch(cfg: GenerateConfig, overwrite: bool = False, world=None) -> dict[str, Any]:
    """Run the recipe; returns the summary (also written to ``summary.json``).

    Prompts are read and responses generated before the run folder is touched, so bad input writes nothing.
    """
    t0 = time.time()
    if not overwrite and cfg.run.path.is_dir() and any(cfg.run.path.iterdir()):
        Run.create(cfg.run.path)  # raises the usual "run folder already exists" error before any work
    world_items: list[dict[str, Any]] = []
    if cfg.prompts == WORLD:
        if world is None:
            from ..world import World
            world = World(cfg.world.seed)
        world_items = _world_items(cfg, world)
        prompts = [_world_prompt(it) for it in world_items]
    else:
        prompts = _file_prompts(cfg)
    if not prompts:
        raise InputError("no prompts to generate for", field="prompts")
    if cfg.model == WORLD:
        groups = _world_responses(cfg, world, world_items)
        model_id, sampling = "world", {"seed": cfg.sampling.seed, "source": "world.candidate_responses"}
    else:
        groups = _model_responses(cfg, prompts)
        model_id, sampling = cfg.model, cfg.sampling.model_dump() | {"n": cfg.k}
    run = Run.create(cfg.run.path, cfg, overwrite=overwrite)
    rows = []
    for p, group in zip(prompts, groups):
        item = BatchItem(id=p["id"], prompt=p["messages"], responses=group, model=model_id, sampling=sampling,
                         meta=p["meta"])
        rows.append(item.model_dump(mode="json"))
    write_jsonl_atomic(run.path / BATCH_FILE, rows)
    texts = [r["text"] for g in groups for r in g]
    finished = [r["finished"] for g in groups for r in g if "finished" in r]
    tokens = [r["tokens"] for g in groups for r in g if "tokens" in r]
    summary = {"prompts": len(rows), "k": cfg.k, "responses": len(texts), "model": model_id,
               "prompt_source": cfg.prompts,
               "distinct_per_prompt": round(sum(len(set(r["text"] for r in g)) for g in groups) / len(groups), 3),
               "empty_responses": sum(1 for t in texts if not t.strip()),
               "finished_rate": round(sum(finished) / len(finished), 4) if finished else None,
               "mean_tokens": round(sum(tokens) / len(tokens), 2) if tokens else None,
               "seconds": round(time.time() - t0, 2), "batch": str(run.path / BATCH_FILE)}
    run.write_summary(summary)
    return summary
