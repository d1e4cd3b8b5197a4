"""The training settings every stage shares (the ``train:`` section of any stage's config)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import Section


class TrainConfig(Section):
    steps: int = Field(1000, ge=1, description="optimizer steps")
    batch_size: int = Field(8, ge=1, description="examples per optimizer step, summed over processes")
    micro_batch_size: int | None = Field(None, ge=1, description="examples per forward pass per process")
    lr: float | None = Field(None, gt=0, description="peak learning rate; null: the stage picks one")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of lr")
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "wsd", "linear", "constant"] = "cosine"
    decay_fraction: float = Field(0.2, gt=0, le=1, description="WSD: fraction of steps spent decaying")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float | None = Field(1.0, description="max global grad norm; null disables")
    eval_every: int = Field(0, ge=0, description="0: only at the end")
    save_every: int = Field(0, ge=0, description="0: only at the end")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    seed: int = 0
    distributed: Literal["ddp", "fsdp"] = "ddp"
    dtype: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    fused_optimizer: bool = True

    @model_validator(mode="after")
    def _micro_divides(self) -> TrainConfig:
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of "
                             f"micro_batch_size {self.micro_batch_size}")
        return self

    def grad_accum(self, world_size: int) -> int:
        micro = self.micro_batch_size or self.batch_size // world_size
        per_step = micro * world_size
        if self.batch_size % per_step:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by micro_batch_size {micro} "
                             f"x {world_size} processes")
        return self.batch_size // per_step

    def micro(self, world_size: int) -> int:
        return self.micro_batch_size or max(1, self.batch_size // world_size)
