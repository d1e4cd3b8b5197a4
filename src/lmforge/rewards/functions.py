"""Python reward functions named ``module:function`` (or ``path/to/file.py:function``).

**Signature.** A reward function scores a whole batch::

    def my_reward(prompts: list[list[dict]], responses: list[str], meta: list[dict | None], **kwargs) -> list[float]

with the three lists of :class:`~lmforge.rewards.base.Reward` (``prompts[i]`` the chat messages, ``responses[i]``
the response text, ``meta[i]`` the prompt item's extra fields) and the term's ``kwargs`` from the config. It
returns one finite number per response (a list, tuple, numpy array or 1-D tensor).

**Per-sample functions.** A function decorated with :func:`per_sample` is instead called once per response as
``fn(prompt, response, meta, **kwargs) -> float``. That is the only rule: signatures are not guessed.

**Checked before training** (:func:`load_function`): the module imports, the name exists (else the closest
callables of the module are suggested) and is callable, and it accepts the three arguments plus ``kwargs``.
**Checked on every call** (:func:`~lmforge.rewards.base.check_scores`): the count and finiteness of the scores;
an exception inside the function is re-raised as a :class:`~lmforge.rewards.base.RewardError` naming the
function and the first response it fails on (a batch function that raises is called again on one response at a
time to find it, so a reward function should not count on being called once per batch).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from .base import Messages, RewardError, check_batch, check_scores, clip_scores


def per_sample(fn: Callable[..., float]) -> Callable[..., float]:
    """Mark ``fn(prompt, response, meta, **kwargs) -> float`` to be called once per response."""
    fn.lmforge_per_sample = True
    return fn


def _import(module: str, spec: str):
    if module.endswith(".py"):  # a file: imported under a private name so it cannot shadow a real module
        path = Path(module)
        if not path.is_file():
            raise InputError(f"reward function {spec}: file {module} not found", field="function")
        name = f"lmforge_reward_file_{abs(hash(str(path.resolve())))}"
        if name in sys.modules:
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(mod)
        except Exception as e:
            raise InputError(f"reward function {spec}: importing {module} failed ({type(e).__name__}: {e})",
                             field="function") from None
        sys.modules[name] = mod
        return mod
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = f"module {e.name!r} not found" if e.name else str(e)
        raise InputError(f"reward function {spec}: cannot import {module} ({missing})", field="function") from None
    except Exception as e:  # the module itself fails while importing
        raise InputError(f"reward function {spec}: importing {module} failed ({type(e).__name__}: {e})",
                         field="function") from None


def load_function(spec: str, kwargs: dict[str, Any] | None = None) -> Callable[..., Any]:
    """The callable ``spec`` names, checked to accept ``(prompts, responses, meta, **kwargs)``."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise InputError(f"reward function {spec!r} is not of the form 'module:function' "
                         "(e.g. lmforge.rewards.builtin:exact_answer)", field="function")
    mod = _import(module, spec)
    fn = getattr(mod, attr, None)
    if fn is None:
        names = [n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"reward function {spec}: {module} has no {attr!r}{hint}", field="function")
    if not callable(fn):
        raise InputError(f"reward function {spec}: {attr!r} is a {type(fn).__name__}, not a function",
                         field="function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return fn
    try:
        sig.bind(None, None, None, **(kwargs or {}))
    except TypeError as e:
        form = "prompt, response, meta" if getattr(fn, "lmforge_per_sample", False) else "prompts, responses, meta"
        raise InputError(f"reward function {spec}{sig} cannot be called as {attr}({form}"
                         f"{''.join(', ' + k + '=...' for k in kwargs or {})}): {e}", field="function") from None
    return fn


class FunctionReward:
    """A Python function as a reward; see the module docstring for its signature."""

    def __init__(self, spec: str, fn: Callable[..., Any] | None = None, kwargs: dict[str, Any] | None = None,
                 name: str | None = None, clip: float | None = None):
        self.spec = spec
        self.kwargs = dict(kwargs or {})
        self.fn = fn if fn is not None else load_function(spec, self.kwargs)
        self.name = name or spec.rsplit(":", 1)[-1]
        self.clip = clip
        self.per_sample = bool(getattr(self.fn, "lmforge_per_sample", False))
        self.last_terms: dict[str, torch.Tensor] = {}

    def _raised(self, e: Exception, index: int | None) -> RewardError:
        at = f" at response {index}" if index is not None else ""
        return RewardError(f"reward function {self.spec} raised{at}: {type(e).__name__}: {e}")

    def _culprit(self, prompts, responses, meta) -> int | None:
        """The first response the function raises on when called on it alone; None when each alone passes (the
        failure needs the batch). Only run after a batch call has raised."""
        for i in range(len(responses)):
            try:
                self.fn([prompts[i]], [responses[i]], [meta[i]], **self.kwargs)
            except Exception:
                return i
        return None

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor:
        check_batch(self.name, prompts, responses, meta)
        if self.per_sample:
            out = []
            for i, (p, r, m) in enumerate(zip(prompts, responses, meta)):
                try:
                    out.append(self.fn(p, r, m, **self.kwargs))
                except Exception as e:
                    raise self._raised(e, i) from e
        else:
            try:
                out = self.fn(prompts, responses, meta, **self.kwargs)
            except Exception as e:
                raise self._raised(e, self._culprit(prompts, responses, meta)) from e
        scores = clip_scores(check_scores(f"function {self.spec}", out, len(responses)), self.clip)
        self.last_terms = {self.name: scores}
        return scores
