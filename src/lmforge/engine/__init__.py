"""The one training engine: loop, accumulation, schedule, checkpoint/resume, distributed, progress."""
from .config import TrainConfig
from .distributed import DistInfo
from .distributed import init as init_distributed
from .trainer import BatchSource, LossOutput, Trainer, seed_everything

__all__ = ["TrainConfig", "DistInfo", "init_distributed", "BatchSource", "LossOutput", "Trainer", "seed_everything"]
