"""Rewards for RL behind one interface: text in, one float per response out.

- :mod:`.base` the :class:`Reward` protocol, :class:`RewardError` and the score checks
- :mod:`.config` the ``reward`` config section (:class:`RewardSection` of :class:`RewardTerm`)
- :mod:`.build` :func:`build_reward`: every term loaded and validated before training
- :mod:`.functions` Python functions ``module:function``; :mod:`.builtin` the built-in ones
- :mod:`.model_reward` a trained ``lmforge rm`` reward model (its own tokenizer and input format)
- :mod:`.judge_reward` the AI judge of ``lmforge judge``, a local model or an OpenAI-compatible URL
- :mod:`.combine` :class:`WeightedSum`
- :mod:`.routing` :class:`~.routing.Routed`: a term scoring only the prompts its ``when`` tags select
"""
from .base import Reward, RewardError, check_scores
from .build import build_reward, build_term
from .combine import WeightedSum
from .config import JudgeSection, RewardSection, RewardTerm
from .functions import FunctionReward, load_function, per_sample

__all__ = ["FunctionReward", "JudgeSection", "Reward", "RewardError", "RewardSection", "RewardTerm",
           "WeightedSum", "build_reward", "build_term", "check_scores", "load_function", "per_sample"]
