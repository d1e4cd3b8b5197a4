"""Generated tokens/s of ``lmforge serve`` under 1, 8 and 32 concurrent clients, against plain transformers
``generate`` one request at a time on the same model, prompts and settings (greedy, ``max_tokens``), in one run.

    python bench/serve_bench.py --model /work/runs/base/sft/final --requests 128 --max-tokens 32

The server is the real CLI, ``python -m lmforge serve MODEL``, in its own process; the clients run in another
process (``client`` sub-command: asyncio tasks on one official ``AsyncOpenAI`` client, each sending its next chat
request when its last answer arrives), as real clients would, so they do not share the server's GIL. Each setting
sends the same ``--requests`` requests after a warm-up. The peer applies the same chat template and calls
``model.generate`` per request (KV cache, stopping at the model's end-of-turn tokens) in this process while no
server runs, once before and once after the served settings; ratios are against the mean of the two. Tokens are
completion tokens as each side counts them (``usage`` / new ids before the first stop token). One torch thread on
both sides (``--threads``, passed to the server as ``OMP_NUM_THREADS``). One JSON line per measurement.

Besides wall-clock tokens/s (the target), each line has CPU seconds: the peer's process, the server process's
(``/proc``, from after a warm-up of ``k`` requests to the end of the setting) and the client process's. The
``cpu_ratios`` (generated tokens per server CPU second against the peer's per CPU second) say what the server
would do with a core of its own, and hardly move with the machine's other load, which the wall ratios do.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

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

    def one(conv) -> int:
        ids = tok.apply_chat_template(conv, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id)[0, ids["input_ids"].shape[1]:].tolist()
        return next((i for i, t in enumerate(out) if t in stops), len(out))

    with torch.no_grad():
        one(convs[0])  # warm-up, as the server gets
        start, cpu = time.perf_counter(), time.process_time()
        tokens = sum(one(conv) for conv in convs)
    secs, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"side": "transformers generate, one at a time", "requests": len(convs), "tokens": tokens,
            "seconds": round(secs, 3), "tokens_per_s": round(tokens / secs, 1), "cpu_s": round(cpu, 3),
            "tokens_per_cpu_s": round(tokens / cpu, 1)}


async def clients(url: str, convs, max_tokens: int, k: int) -> dict:
    """``k`` closed-loop clients sharing the request list; tokens, seconds, per-request latencies and this
    process's CPU seconds."""
    import openai

    todo, tokens, lat = list(reversed(convs)), [0], []
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600) as c:
        async def ask(conv) -> int:
            r = await c.chat.completions.create(model="m", messages=conv, temperature=0, max_tokens=max_tokens)
            return r.usage.completion_tokens

        async def client() -> None:
            while todo:
                conv = todo.pop()
                t = time.perf_counter()
                n = await ask(conv)  # not `tokens[0] += await ...`: that reads tokens[0] before the await
                tokens[0] += n
                lat.append(time.perf_counter() - t)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client() for _ in range(k)))
        secs, cpu = time.perf_counter() - start, time.process_time() - cpu
    lat.sort()
    return {"side": f"lmforge serve, {k} clients", "requests": len(convs), "tokens": tokens[0],
            "seconds": round(secs, 3), "tokens_per_s": round(tokens[0] / secs, 1), "client_cpu_s": round(cpu, 3),
            "latency_p50_s": round(lat[len(lat) // 2], 4), "latency_p95_s": round(lat[int(len(lat) * 0.95)], 4)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m lmforge serve MODEL`` on a free loopback port, in its own process."""

    def __init__(self, model: str, threads: int, extra: list[str]):
        import httpx

        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", model, "--port",
                                      self.url.rsplit(":", 1)[1], "--name", "m", "--device", "cpu",
                                      "--log-level", "warning", *extra], env=env)
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("lmforge serve did not start")
            time.sleep(0.2)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_clients(url: str, a, k: int, warm_up: bool = False) -> dict:
    """The clients in a fresh process (``client`` sub-command), so they share neither GIL nor heap with us."""
    cmd = [sys.executable, __file__, "client", "--url", url, "--requests", str(k if warm_up else a.requests),
           "--max-tokens", str(a.max_tokens), "--clients", str(k)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        ap = argparse.ArgumentParser()
        ap.add_argument("client")
        ap.add_argument("--url", required=True)
        ap.add_argument("--requests", type=int, required=True)
        ap.add_argument("--max-tokens", type=int, required=True)
        ap.add_argument("--clients", type=int, required=True)
        a = ap.parse_args()
        print(json.dumps(asyncio.run(clients(a.url, prompts(a.requests), a.max_tokens, a.clients))))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `lmforge serve` argument (repeat)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(),
                      "model": a.model, "max_tokens": a.max_tokens, "cores": os.cpu_count()}), flush=True)
    convs = prompts(a.requests)
    before = baseline(a.model, convs, a.max_tokens)
    print(json.dumps({**before, "when": "before"}), flush=True)
    server = Server(a.model, a.threads, a.serve_arg)
    served = []
    try:
        for k in (int(x) for x in a.clients.split(",")):
            run_clients(server.url, a, k, warm_up=True)  # k requests at k clients, not counted
            cpu = server.cpu_s()
            served.append(run_clients(server.url, a, k))
            served[-1]["server_cpu_s"] = round(server.cpu_s() - cpu, 3)
            served[-1]["load"] = os.getloadavg()[0]
            print(json.dumps(served[-1]), flush=True)
    finally:
        server.stop()
    after = baseline(a.model, convs, a.max_tokens)
    print(json.dumps({**after, "when": "after"}), flush=True)
    peer = statistics.mean([before["tokens_per_s"], after["tokens_per_s"]])
    peer_cpu = statistics.mean([before["tokens_per_cpu_s"], after["tokens_per_cpu_s"]])
    print(json.dumps({"peer_tokens_per_s": round(peer, 1),
                      "ratios": {r["side"]: round(r["tokens_per_s"] / peer, 2) for r in served},
                      # generated tokens per CPU second of the server alone, against the peer's: what the ratio
                      # would be with a core each, and far less sensitive to the machine's other load
                      "cpu_ratios": {r["side"]: round(r["tokens"] / r["server_cpu_s"] / peer_cpu, 2)
                                     for r in served if r["server_cpu_s"] > 0},
                      "load_after": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
