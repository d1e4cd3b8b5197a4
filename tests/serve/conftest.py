"""The OpenAI-compatible server on the tiny chat model, running under uvicorn in a thread on a free port.

``chatty_model_path`` is the same model untrained: its greedy answers run to ``max_tokens`` (it never picks an
end-of-turn token), for tests that need answers of many tokens (adapters, the chat page, shutdown)."""
from __future__ import annotations

import pytest

from tiny_chat import build_tiny_chat_lm, one_torch_thread, session_model
from web_helpers import LiveServer as ThreadServer  # noqa: F401  (the serve tests' name for it)
from web_helpers import free_port  # noqa: F401


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def chat_model_path(tmp_path_factory):
    return session_model(tmp_path_factory)


@pytest.fixture(scope="session")
def chatty_model_path(tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "chatty-lm"
    if not (path / "config.json").exists():
        with one_torch_thread():
            build_tiny_chat_lm(path, steps=0)
    return path


def random_adapter(base, path, seed: int, sft: bool = False):
    """A LoRA adapter of ``base`` saved at ``path``, its weights drawn from ``seed`` alone (peft draws A from the
    global RNG, so A is redrawn here too), with B not zero as a trained adapter's, so it changes the answers.
    ``sft``: as SFT saves one, with trainable special-token rows (small deltas) and the tokenizer beside it."""
    import torch

    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.models.peft import PeftSection, apply_peft, save_adapter

    tok = load_tokenizer(str(base))
    special = [tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens] if sft else None
    model = apply_peft(load_causal_lm(str(base)), PeftSection(method="lora", r=2, alpha=4), special)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "trainable_tokens_delta" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return save_adapter(model, tok if sft else None, path, str(base))


@pytest.fixture(scope="module")
def engine(chat_model_path):
    from lmforge.serve.engine import ChatEngine

    return ChatEngine.load(str(chat_model_path), device="cpu", served_name="tiny-chat")


@pytest.fixture(scope="module")
def server(engine):
    from lmforge.serve.openai_server import create_app

    with ThreadServer(create_app(engine)) as live:
        yield live


@pytest.fixture(scope="module")
def make_server(chat_model_path):
    """A fresh engine (with its own options) behind its own server: ``make_server(api_key=..., **engine_opts)``
    returns (engine, live server); everything is shut down at the end of the module."""
    from contextlib import ExitStack

    from lmforge.serve.engine import ChatEngine
    from lmforge.serve.openai_server import create_app

    with ExitStack() as stack:
        def make(api_key=None, **options):
            eng = ChatEngine.load(str(chat_model_path), device="cpu", served_name="tiny-chat", **options)
            stack.callback(eng.close)
            return eng, stack.enter_context(ThreadServer(create_app(eng, api_key=api_key)))
        yield make
