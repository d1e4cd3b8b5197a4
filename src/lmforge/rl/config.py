"""The ``rl:`` section: which algorithm and its knobs (defaults from the sources cited beside each)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import Section

ALGORITHMS = ("ppo", "grpo", "rloo")


class RLSection(Section):
    algorithm: Literal["ppo", "grpo", "rloo"] = "ppo"
    rollouts: int = Field(10, ge=1, description="rollout phases; train.steps = rollouts x ppo_epochs x "
                          "minibatches per rollout")
    prompts_per_rollout: int = Field(16, ge=1, description="prompts per rollout, summed over processes")
    group_size: int | None = Field(None, ge=1, description="responses per prompt; null: 1 for ppo, 4 for "
                                   "grpo/rloo (critic-free baselines need siblings)")
    ppo_epochs: int = Field(1, ge=1, description="passes over each rollout buffer")
    forward_batch: int = Field(32, ge=1, description="rows per no-grad forward in the rollout phase")
    recompute_old_logprobs: bool = Field(False, description="recompute the ratio's old log-probs by a no-grad "
                                         "forward even where the sampler's are exactly them (rollout.py "
                                         "sampled_logprobs_are_old); logs logprob_mismatch")
    # KL to the reference
    kl_coef: float = Field(0.05, ge=0, description="β (N implementation details: 0.05)")
    kl_mode: Literal["reward", "loss", "none"] | None = Field(
        None, description="reward: β·k1 per token in the reward (PPO); loss: β·k3 as a loss term (GRPO); "
        "none: no KL term (still logged while rl.kl_coef > 0); null: reward for ppo/rloo, loss for grpo")
    kl_estimator: Literal["k1", "k2", "k3"] | None = Field(None, description="null: k1 in the reward, k3 as "
                                                           "a loss term (OpenRLHF warns on other pairings)")
    kl_target: float | None = Field(None, gt=0, description="adaptive β (Ziegler et al. 2019) toward this "
                                    "KL per response; null: fixed β")
    kl_horizon: float = Field(10000, gt=0, description="adaptive β: horizon in responses")
    kl_budget: float | None = Field(None, gt=0, description="alarm when the mean KL per response to the "
                                    "reference passes this")
    stop_on_kl_budget: bool = Field(False, description="stop training (not only warn) past kl_budget")
    # rewards
    reward_clip: float | None = Field(10.0, gt=0, description="clip the (normalised) score to ±c (OpenRLHF)")
    missing_eos_penalty: float | None = Field(-1.0, description="score of a response cut at the length "
                                              "budget (N implementation details: -1); null: off")
    length_penalty: float = Field(0.0, ge=0, description="subtracted from the score per response token")
    # advantages and losses
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ")
    whiten_advantages: bool | None = Field(None, description="null: on for ppo, off otherwise")
    scale: Literal["group", "batch", "none"] = Field("group", description="grpo: divide by the group's std, "
                                                      "the batch's, or not (Dr. GRPO)")
    clip_low: float = Field(0.2, gt=0, lt=1, description="ε of the clipped surrogate")
    clip_high: float | None = Field(None, gt=0, description="DAPO clip-higher ε_high (0.28); null: ε")
    dual_clip: float | None = Field(None, gt=1, description="dual-clip c (e.g. 3); null: off")
    loss_aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                              "seq-mean-token-sum-norm"] = "token-mean"
    entropy_coef: float = Field(0.0, ge=0)
    drop_equal_groups: bool = Field(True, description="grpo/rloo: groups whose rewards are all equal carry "
                                    "no signal; their rows are masked out of the loss (DAPO)")
    mask_truncated: bool = Field(False, description="responses cut at the length budget leave the loss (DAPO)")
    # critic
    critic: Literal["shared", "reward_model"] = Field("shared", description="ppo: a value head on the "
                                                      "policy, or a critic initialised from the reward model")
    critic_path: str | None = Field(None, description="critic=reward_model: its folder; null: the first "
                                    "reward term of kind model")
    vf_coef: float = Field(0.1, ge=0, description="value loss weight (N implementation details: 0.1)")
    value_clip: float | None = Field(0.2, gt=0, description="value clipping ε_v; null: off")
    value_lr: float | None = Field(None, gt=0, description="critic learning rate; null: train.lr")
    # logging
    samples_every: int = Field(1, ge=0, description="write samples.jsonl every N rollouts; 0: never")
    samples_per_rollout: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RLSection:
        d = self.__dict__  # resolved defaults, set without re-running validation (validate_assignment)
        if self.group_size is None:
            d["group_size"] = 1 if self.algorithm == "ppo" else 4
        if self.algorithm != "ppo" and self.group_size < 2:
            raise ValueError(f"{self.algorithm} needs rl.group_size >= 2 (a baseline from sibling responses)")
        if self.kl_mode is None:
            d["kl_mode"] = "loss" if self.algorithm == "grpo" else "reward"
        if self.kl_estimator is None:
            d["kl_estimator"] = "k1" if self.kl_mode == "reward" else "k3"
        if self.whiten_advantages is None:
            d["whiten_advantages"] = self.algorithm == "ppo"
        return self

    @property
    def uses_reference(self) -> bool:
        """Whether anything reads log π_ref: a KL coefficient (fixed β > 0 or adaptive) or the KL budget's
        alarm. Without one (TRL's GRPO default beta=0) no reference copy is made, the rollout skips the
        reference forward and ``kl_ref`` is not logged."""
        return self.kl_coef > 0 or self.kl_target is not None or self.kl_budget is not None

    @property
    def uses_critic(self) -> bool:
        return self.algorithm == "ppo"
