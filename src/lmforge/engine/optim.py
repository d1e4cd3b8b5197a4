"""AdamW with the usual parameter groups: no weight decay on biases, norms and embeddings' 1-D params."""
from __future__ import annotations

import torch

from .config import TrainConfig


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


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
