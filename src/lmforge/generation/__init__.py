"""One generation engine for evaluation, labeling batches, RL rollouts and the server (see :mod:`.engine`)."""
from .engine import EngineClosed, GenerationEngine, Request
from .outputs import Completion
from .params import SamplingParams, row_seed, stop_token_ids

__all__ = ["Completion", "EngineClosed", "GenerationEngine", "Request", "SamplingParams", "row_seed",
           "stop_token_ids"]
