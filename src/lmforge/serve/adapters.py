"""Several LoRA adapters over one base model, each served under its own model name (``--adapter NAME=PATH``).

The base is loaded once and wrapped in one ``peft.PeftModel`` holding every adapter (under internal names
``a0``, ``a1``, ...: a served name may hold characters, such as dots, that peft's module keys cannot). Each
served name gets its own :class:`~.engine.ChatEngine`, so its own generation engine, queue and worker: requests
for different adapters are never batched together. The engines' backends share one lock and switch the model to
their adapter inside it before each batch (:class:`ActiveAdapter`), so one batch at a time uses the model, with
the right adapter. The base itself is served under its own name with the adapters disabled, when its tokenizer
has a chat template. All the engines share one :class:`~.engine.Admission`: ``--max-queue`` and ``/metrics``
are the server's.

An adapter is computed unmerged (``W x + B A x``, not ``(W + B A) x``; special-token rows an SFT adapter
trained are peft's trainable tokens, switched with it); its greedy answers equal those of the same adapter
served alone merged (``tests/serve/test_adapters.py``), up to float rounding in near ties. An adapter folder
that saved its tokenizer (SFT does, with the chat template) is served with it, else with the base's.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch

from ..errors import InputError
from .engine import Admission, ChatEngine, default_name


def parse_adapter(spec: str, option: str = "adapter") -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (named after its folder) -> (name, path); ``option``: the CLI option it came
    from (``--adapter``, ``--reward-model``), for the error."""
    name, sep, path = spec.partition("=")
    if not sep:
        return default_name(spec), spec
    if not name or not path:
        raise InputError(f"--{option} {spec!r}: use NAME=PATH or PATH", field=option)
    return name, path


def same_model(a: str, b: str) -> bool:
    """Whether two model specs name the same model: the same file or folder, or the same hub id."""
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/") == b.rstrip("/")


class ActiveAdapter:
    """A generation backend that runs each batch with one adapter active (``None``: the base alone), holding the
    lock that every engine over this model shares while it switches and generates."""

    def __init__(self, inner, model, adapter: str | None, lock: threading.Lock):
        self.inner, self.model, self.adapter, self.lock = inner, model, adapter, lock
        self.name = getattr(inner, "name", "hf")

    @property
    def context(self) -> int:
        return self.inner.context

    def run(self, rows, params):
        with self.lock:
            if self.adapter is None:
                active = self.model.disable_adapter()
            else:
                self.model.set_adapter(self.adapter)
                active = nullcontext()
            with active:
                return self.inner.run(rows, params)

    def load_weights(self, state_dict) -> None:
        with self.lock:
            self.inner.load_weights(state_dict)


def check_adapters(base: str, adapters: Sequence[tuple[str, str]], base_name: str) -> None:
    """Exit 2 (``InputError``) for a missing adapter folder, a repeated name, or an adapter of another base."""
    from ..models.peft import base_of, is_adapter

    seen = {base_name}
    for name, path in adapters:
        if not is_adapter(path):
            raise InputError(f"adapter {name!r}: {path} is not an adapter folder (no adapter_config.json)",
                             field="adapter")
        if name in seen:
            raise InputError(f"adapter {name!r}: the name is already served (give each adapter its own "
                             "NAME=PATH)", field="adapter")
        seen.add(name)
        trained_on = base_of(path)
        if not same_model(trained_on, base):
            raise InputError(f"adapter {name!r} ({path}) was trained on {trained_on}, not on the base {base}",
                             field="adapter")


def load_with_adapters(base: str, adapters: Sequence[tuple[str, str]], *, dtype: str = "float32",
                       device: str = "auto", served_name: str | None = None, max_queue: int = 64,
                       **options) -> list[ChatEngine]:
    """One engine per served name over one base model in memory (see the module doc); the base's own first
    when it can chat. ``adapters``: (served name, folder)."""
    from peft import PeftModel

    from ..models.load import load_causal_lm, load_tokenizer
    from ..models.peft import is_adapter

    if is_adapter(base):
        raise InputError(f"{base} is an adapter folder: with --adapter, MODEL is the base model the adapters "
                         "were trained on", field="model")
    base_name = served_name or default_name(base)
    check_adapters(base, adapters, base_name)
    device = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    base_tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, dtype)
    for k, (_, path) in enumerate(adapters):
        if k == 0:
            model = PeftModel.from_pretrained(model, path, adapter_name="a0")
        else:
            model.load_adapter(path, adapter_name=f"a{k}")
    model = model.to(device).eval()
    lock, admission = threading.Lock(), Admission(max_queue)
    served: list[tuple[str, object, str | None]] = []
    if getattr(base_tokenizer, "chat_template", None):
        served.append((base_name, base_tokenizer, None))
    else:
        print(f"the base {base_name} has no chat template: it is served only through its adapters", file=sys.stderr)
    for k, (name, path) in enumerate(adapters):
        own = (Path(path) / "tokenizer_config.json").exists()  # an SFT adapter carries its chat template
        served.append((name, load_tokenizer(path) if own else base_tokenizer, f"a{k}"))
    engines = []
    for name, tokenizer, adapter in served:
        try:
            engine = ChatEngine(model, tokenizer, name, admission=admission, **options)
        except ValueError as e:
            raise InputError(str(e), field="adapter") from None
        # the engine's own backend (its stop tokens and padding), run with this name's adapter active
        engine.engine.backend = ActiveAdapter(engine.engine.backend, model, adapter, lock)
        engines.append(engine)
    return engines
