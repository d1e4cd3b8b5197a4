"""A trained ``lmforge rm`` reward model as a reward: text in, its scalar reward out.

The text is re-tokenised with the reward model's own tokenizer and input format (chat template, transcript or
encoder sentence pair) by :class:`lmforge.models.reward_scores.RewardScorer`, the code path of ``lmforge rm score``,
so the policy may use another tokenizer and the reward equals ``rm score`` on the same text. Scoring is batched
and length-sorted, in eval mode without gradients. With ``normalize`` the reward is ``(r - mean) / std`` with the
statistics ``lmforge rm`` saved (the reward's mean and std over training responses), then clipped to
``[-clip, clip]``.

:func:`check_reward_folder` runs before any weights load: ``reward.json`` present, a sequence-classification
architecture whose weights hold the scalar head (a causal-LM folder with a ``reward.json`` copied in would
otherwise load with a randomly initialised head) — or, for a generative verifier (``head: generative``), a
causal-LM architecture with its saved verdict — and the saved mean/std when normalising.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from ..algos.kl import normalised_scores
from ..errors import InputError
from ..models.reward import SIDECAR, RewardMeta
from ..models.reward_scores import RewardScorer
from .base import Messages, check_batch, check_scores, clip_scores

HEAD_PREFIXES = ("score", "classifier")  # the scalar head of <Arch>ForSequenceClassification / BERT-style models


def _weight_names(folder: Path) -> list[str] | None:
    """Tensor names in the folder's safetensors weights (None when the weights are in another format)."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return list(json.loads(index.read_text()).get("weight_map", {}))
    single = folder / "model.safetensors"
    if single.exists():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            return list(f.keys())
    return None


def check_reward_folder(path: str | Path, normalize: bool) -> RewardMeta:
    """The folder's :class:`RewardMeta`, or an :class:`InputError` naming the folder and what is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError("reward model folder not found", file=folder)
    side = folder / SIDECAR
    if not side.exists():
        raise InputError(f"not an lmforge reward model folder (no {SIDECAR}; train one with `lmforge rm`)",
                         file=folder)
    try:
        raw = json.loads(side.read_text())
        meta = RewardMeta(**raw)
    except (ValueError, TypeError) as e:
        raise InputError(f"unreadable {SIDECAR} ({e})", file=folder) from None
    cfg_file = folder / "config.json"
    config = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    archs = config.get("architectures") or []
    names = _weight_names(folder)
    heads = [n for n in names or [] if n.split(".")[0] in HEAD_PREFIXES]
    if meta.head == "generative":  # the LM's own verdict tokens are the head: no extra tensor to look for
        if not any(a.endswith("ForCausalLM") for a in archs) or not meta.verdict:
            raise InputError(f"a generative reward model needs a causal-LM architecture (config.json has "
                             f"{archs or 'none'}) and its verdict in {SIDECAR}", file=folder)
    elif not any(a.endswith("ForSequenceClassification") for a in archs) or (names is not None and not heads):
        what = f"config.json architectures {archs or 'missing'}"
        if names is not None and not heads:
            what += ", no score/classifier tensor in the weights"
        raise InputError(f"no reward head ({what}): this looks like a language model, not an `lmforge rm` "
                         "output folder", file=folder)
    if normalize:
        missing = [k for k in ("reward_mean", "reward_std") if not isinstance(raw.get(k), (int, float))]
        if missing:
            raise InputError(f"{SIDECAR} has no saved {' and '.join(missing)} to normalise with (retrain with "
                             "`lmforge rm`, or set normalize: false)", file=folder)
        if not (math.isfinite(meta.reward_mean) and math.isfinite(meta.reward_std) and meta.reward_std > 0):
            raise InputError(f"{SIDECAR} has reward_mean {meta.reward_mean} and reward_std {meta.reward_std}; "
                             "the std must be finite and > 0 to normalise (or set normalize: false)", file=folder)
    return meta


def load_scorer(path: str | Path, *, dtype: str = "float32", device: str = "auto",
                normalize: bool = False) -> RewardScorer:
    """The reward model in ``path`` as a :class:`RewardScorer`, after :func:`check_reward_folder` (a clear error
    naming the folder before any weights load); ``device="auto"``: CUDA when present, else the CPU. The one
    loader behind RL rewards, ``lmforge judge --model`` and ``lmforge serve --reward-model``."""
    check_reward_folder(path, normalize)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return RewardScorer(path, dtype=dtype, device=device)


def head_column(scorer: RewardScorer, path: str | Path, head: str | None, normalize: bool
                ) -> tuple[int, float, float]:
    """``(column, mean, std)`` of the head a term reads: column 0 and the saved reward statistics for ``None``;
    else the named head (``rm score``'s names: ``reward`` then each criterion) with the statistics ``lmforge rm``
    saved per head (``stats.heads``). A name the model lacks, or a head without saved statistics when
    normalising, is an :class:`InputError` naming the folder."""
    meta = scorer.meta
    if head is None or head == scorer.names[0]:
        return 0, meta.reward_mean, meta.reward_std
    if head not in scorer.names:
        raise InputError(f"the reward model has no head {head!r} (its heads: {', '.join(scorer.names)})",
                         file=path, field="head")
    saved = (meta.stats or {}).get("heads") or {}
    if normalize and head not in saved:
        raise InputError(f"no saved statistics for head {head!r} to normalise with (retrained by an older "
                         "lmforge? retrain with `lmforge rm`, or set normalize: false)", file=path, field="head")
    mean, std = (float(v) for v in saved.get(head, (0.0, 1.0)))
    if normalize and not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise InputError(f"head {head!r} has saved mean {mean} and std {std}; the std must be finite and > 0 to "
                         "normalise (or set normalize: false)", file=path, field="head")
    return scorer.names.index(head), mean, std


class ModelReward:
    """Scores responses with the reward model in ``path``: column 0, the overall reward, or the column of
    ``head`` (one criterion's head: Llama 2's safety and helpfulness reward models as two heads of one, each
    routed to its prompts with ``when``)."""

    def __init__(self, path: str | Path, *, normalize: bool = True, clip: float | None = None,
                 batch_size: int = 32, device: str = "cpu", dtype: str = "float32", name: str | None = None,
                 chunk_tokens: int | None = None, head: str | None = None):
        self.scorer = load_scorer(path, dtype=dtype, device=device, normalize=normalize)
        self.path = str(path)
        self.model, self.tokenizer, self.meta = self.scorer.model, self.scorer.tokenizer, self.scorer.meta
        self.column, self.mean, self.std = head_column(self.scorer, path, head, normalize)
        self.model.eval()
        self.normalize, self.clip = normalize, clip
        self.batch_size, self.chunk_tokens = batch_size, chunk_tokens
        self.name = name or f"rm:{Path(path).name}"
        self.last_terms: dict[str, torch.Tensor] = {}

    def raw_scores(self, prompts: list[Messages], responses: list[str]) -> torch.Tensor:
        """``[N, heads]`` scores as ``lmforge rm score`` gives them (no normalisation, no clipping)."""
        return self.scorer.score(prompts, responses, self.batch_size, self.chunk_tokens)

    @property
    def truncated(self) -> int:
        """Inputs cut to the reward model's max_length so far."""
        return self.scorer.truncated

    def __call__(self, prompts: list[Messages], responses: list[str], meta: list[dict[str, Any] | None]
                 ) -> torch.Tensor:
        check_batch(self.name, prompts, responses, meta)
        if not responses:
            self.last_terms = {self.name: torch.zeros(0)}
            return torch.zeros(0)
        r = check_scores(f"model {self.path}", self.raw_scores(prompts, responses)[:, self.column], len(responses))
        if self.normalize:  # the head's mean and std were checked finite, std > 0 (check_reward_folder, head_column)
            r = normalised_scores(r, self.mean, self.std, self.clip)
        else:
            r = clip_scores(r, self.clip)
        self.last_terms = {self.name: r}
        return r
