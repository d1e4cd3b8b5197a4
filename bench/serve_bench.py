"""Generated tokens/s of ``lmforge serve`` under 1, 8 and 32 concurrent clients, against plain transformers
``generate`` one request at a time on the same model, prompts and settings (greedy, ``max_tokens``), in one run.

    python bench/serve_bench.py --model /work/runs/base/sft/final --requests 32 --max-tokens 32

The server runs in this process under uvicorn on loopback with the official ``openai`` client; each setting
sends the same ``--requests`` chat requests (the clients share them). The baseline applies the same chat
template and calls ``model.generate`` per request (KV cache, stopping at the model's end-of-turn tokens).
Tokens are completion tokens as each side counts them (``usage`` / new ids before the first stop token).
Prints one JSON line per setting and the ratios; one torch thread on both sides (``--threads``).
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

QUESTIONS = ["What is the capital of {}?", "Which continent is {} in?", "What language is spoken in {}?",
             "What currency does {} use?"]
PLACES = ["France", "Peru", "Japan", "Kenya", "Chile", "Egypt", "Norway", "India"]


def prompts(k: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": QUESTIONS[i % 4].format(PLACES[(i // 4) % 8])}] for i in range(k)]


def baseline(model_path: str, convs, max_tokens: int) -> dict:
    import torch

    from lmforge.generation import stop_token_ids
    from lmforge.models.load import load_causal_lm, load_tokenizer

    tok, model = load_tokenizer(model_path), load_causal_lm(model_path).eval()
    stops = stop_token_ids(tok)
    tokens, start = 0, time.perf_counter()
    with torch.no_grad():
        for conv in convs:
            ids = tok.apply_chat_template(conv, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tok.pad_token_id)[0, ids["input_ids"].shape[1]:].tolist()
            tokens += next((i for i, t in enumerate(out) if t in stops), len(out))
    secs = time.perf_counter() - start
    return {"side": "transformers generate, one at a time", "tokens": tokens, "seconds": secs,
            "tokens_per_s": tokens / secs}


def served(model_path: str, convs, max_tokens: int, clients: int) -> dict:
    import openai

    from lmforge.serve.engine import ChatEngine
    from lmforge.serve.openai_server import create_app
    from serve.conftest import ThreadServer

    engine = ChatEngine.load(model_path, device="cpu", served_name="m", max_queue=max(64, clients))
    todo, tokens, lock = list(convs), [0], threading.Lock()
    with ThreadServer(create_app(engine)) as live:
        def client() -> None:
            with openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=600) as c:
                while True:
                    with lock:
                        if not todo:
                            return
                        conv = todo.pop()
                    r = c.chat.completions.create(model="m", messages=conv, temperature=0, max_tokens=max_tokens)
                    with lock:
                        tokens[0] += r.usage.completion_tokens
        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.perf_counter() - start
    engine.close()
    return {"side": f"lmforge serve, {clients} clients", "tokens": tokens[0], "seconds": secs,
            "tokens_per_s": tokens[0] / secs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    convs = prompts(a.requests)
    base = baseline(a.model, convs, a.max_tokens)
    print(json.dumps(base))
    for k in (int(x) for x in a.clients.split(",")):
        r = served(a.model, convs, a.max_tokens, k)
        r["ratio_vs_generate"] = r["tokens_per_s"] / base["tokens_per_s"]
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
