"""AdamW with the usual parameter groups: no weight decay on biases, norms and embeddings' 1-D params.

A model may name parameters that train at their own learning rate (e.g. an RL critic beside the policy) with
a method ``lr_overrides() -> {name prefix: lr}``: those parameters get groups of their own with that peak lr,
and the schedule scales every group by the same multiplier (``LambdaLR`` keeps each group's base lr).
"""
from __future__ import annotations

import torch

from .config import TrainConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    overrides = dict(getattr(model, "lr_overrides", lambda: {})() or {})
    buckets: dict[tuple[float | None, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        own = next((v for k, v in overrides.items() if name.startswith(k)), None)
        buckets.setdefault((own, p.ndim >= 2), []).append(p)
    groups = []
    for (own, decay), params in sorted(buckets.items(), key=lambda kv: (kv[0][0] is not None, kv[0][0] or 0,
                                                                          not kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decay else 0.0}
        if own is not None:
            group["lr"] = own
        groups.append(group)
    return groups


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if cfg.lr is None:
        raise ValueError("train.lr is not set (the stage should resolve its default first)")
    kwargs = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.fused_optimizer:
        try:  # fused kernels exist for CPU and CUDA float tensors in recent torch; fall back quietly otherwise
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, foreach=True, **kwargs)
