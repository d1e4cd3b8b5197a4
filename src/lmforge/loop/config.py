"""``lmforge loop``'s config: how many rounds, where each round's prompts come from, who gives feedback, how the
policy is updated and what is measured. The stage settings (``update.rm``, ``update.rl``, ``update.dpo``) are
partial configs of the stages themselves (``lmforge rm`` / ``ppo`` / ``dpo``): the loop fills in the paths
(model, data, prompts, run folder) and validates the rest against the stage's own schema up front, so a typo
stops before round 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ..config import Section
from ..feedback.modes import DEFAULT_MODE
from ..generation.params import SamplingParams
from ..stages.generate import GENERATE_SAMPLING


class PromptsSection(Section):
    source: str = Field("world", description="'world' (the built-in world's train-split prompts) or a prompt "
                        "file of any shape `lmforge generate` reads; round n takes the n-th slice of it")
    kinds: list[str] | None = Field(None, description="world: only these prompt kinds (e.g. [harmful, "
                                    "over_refusal]); null: every kind")
    per_round: int = Field(32, ge=1, description="new prompts each round (none reused while the source lasts)")
    repeat: bool = Field(True, description="when the source runs out, start another pass over it in a fresh "
                         "order, so the loop goes on; false: a round past the source's end is an error")
    world_seed: int = Field(0, description="the world's seed (which facts exist)")
    sample_seed: int = Field(0, description="world: seed of the prompts' order, which the rounds slice")
    redteam_findings: bool = Field(True, description="add the successful attacks of the previous round's "
                                   "red-team pass to the round's prompts")
    max_findings: int | None = Field(None, ge=1, description="at most this many findings per round; null: all")

    @model_validator(mode="after")
    def _known_kinds(self) -> PromptsSection:
        from ..world.datasets import ALL_KINDS

        unknown = [k for k in self.kinds or [] if k not in ALL_KINDS]
        if unknown:
            raise ValueError(f"unknown prompt kind {unknown[0]!r} in prompts.kinds (the world's kinds: "
                             f"{', '.join(ALL_KINDS)})")
        return self


class SimulatedSource(Section):
    kind: Literal["simulated"] = "simulated"
    labelers: int = Field(1, ge=1, description="simulated labelers sim-1..sim-N, each labels every prompt")
    noise: float = Field(0.0, ge=0, description="the labelers' noise (0: the world's exact grading)")
    seed: int = Field(0, description="labeler i uses seed + i")


class JudgeSource(Section):
    kind: Literal["ai"] = "ai"
    model: str = Field(description="the judge: a local model folder, .gguf file or hub id (lmforge judge "
                       "--model)")
    name: str = Field("judge", description="the judge's labeler name (source ai:NAME)")
    criteria: bool = Field(True, description="also score each response on the five criteria")
    batch_size: int = Field(8, ge=1)


class HumanSource(Section):
    kind: Literal["human"] = "human"
    per_item: int = Field(1, ge=1, description="labelers per prompt (lmforge label assign -n)")
    labelers: list[str] | None = Field(None, description="user names; null: every active human labeler")
    quorum: float = Field(1.0, gt=0, le=1, description="go on once this share of the round's human "
                          "assignments is labelled")
    deadline_hours: float | None = Field(None, gt=0, description="or once this long has passed since the "
                                         "round's batch was created (with at least one label); null: no deadline")
    wait: bool = Field(False, description="true: poll the database until quorum or deadline, showing progress; "
                       "false: report progress and stop (run `lmforge loop` again later to continue)")
    poll_seconds: float = Field(30.0, gt=0, description="wait: seconds between looks at the database")


FeedbackSource = SimulatedSource | JudgeSource | HumanSource


class FeedbackSection(Section):
    db: str | None = Field(None, description="the feedback database (path, folder or URL); null: OUT/feedback.db")
    sources: list[FeedbackSource] = Field(default_factory=lambda: [SimulatedSource()], min_length=1,
                                          description="who labels each round's batch (each label keeps its "
                                          "source: human:NAME, ai:NAME, simulated:sim-i)")
    heldout_fraction: float = Field(0.2, gt=0, lt=1, description="share of each round's prompts whose labels are "
                                    "held out to measure the reward model on the newest policy's responses")
    batch_prefix: str = Field("loop", pattern=r"^[A-Za-z0-9_.@:-]{1,50}$", description="round n's batch is "
                              "PREFIX-round-NNN (pick one per loop when loops share a database)")
    mode: Literal["rank", "rank+overall", "rank+criteria"] = Field(
        DEFAULT_MODE, description="what labelers give per prompt (lmforge label add-batch --mode; the loop learns "
        "from rankings, so not good-bad)")


class UpdateSection(Section):
    method: Literal["ppo", "grpo", "rloo", "dpo"] = Field("ppo", description="ppo / grpo / rloo: a reward model "
                                                          "on all feedback so far, then RL against it; dpo: "
                                                          "DPO on all feedback so far (no reward model)")
    reward_model: str | None = Field(None, description="round 1's reward-model start: a backbone (a causal LM or "
                                     "encoder) or a reward-model folder; later rounds continue from the last "
                                     "round's; null: the starting policy")
    rm: dict[str, Any] = Field(default_factory=dict, description="lmforge rm settings (loss, epochs, train, "
                               "model.max_length, ...); model.path, data and run are the loop's")
    rl: dict[str, Any] = Field(default_factory=dict, description="lmforge ppo/grpo/rloo settings (rl, train, "
                               "sampling, ...); model.path, prompts, reward and run are the loop's")
    reward_term: dict[str, Any] = Field(default_factory=dict, description="settings of RL's reward term of "
                                        "kind model (e.g. clip: 5.0, normalize); its path is the round's reward model")
    dpo: dict[str, Any] = Field(default_factory=dict, description="lmforge dpo settings (loss, train, ...); "
                                "model.path, data and run are the loop's")
    on_worse_reward_model: Literal["stop", "continue"] = Field(
        "stop", description="the new reward model's held-out accuracy on the newest round's labels is below the "
        "previous reward model's on the same labels: stop before RL (stop) or only report it (continue)")
    compare_with: Literal["previous_model", "previous_round"] = Field(
        "previous_model", description="what the new reward model's accuracy on the newest labels is held against: "
        "the previous reward model's on the same labels (previous_model), or the previous round's reward model on "
        "its own newest labels (previous_round: other labels, so it mixes model and data changes)")
    tolerance: float = Field(0.0, ge=0, le=1, description="accuracy the new reward model may lose before it "
                             "counts as worse")


class EvalSection(Section):
    suites: list[Literal["world", "truthfulqa", "bpb"]] = Field(default_factory=lambda: ["world"])
    n_per_suite: int = Field(64, ge=1, description="world: held-out prompts per suite")
    truthfulqa: str | None = Field(None, description="suite truthfulqa: TruthfulQA mc_task.json")
    text: str | None = Field(None, description="suite bpb: held-out text")
    limit: int | None = Field(None, ge=1, description="truthfulqa / bpb: at most N items")
    batch_size: int = Field(16, ge=1)
    compare: bool = Field(True, description="with the world suite: each round's policy against the starting "
                          "policy and (from round 2) round 1's, judged by the noise-free simulated labeler")
    compare_n_per_suite: int = Field(64, ge=1, description="compare: held-out prompts per suite (5 suites)")

    @model_validator(mode="after")
    def _files(self) -> EvalSection:
        for suite, key in (("truthfulqa", "truthfulqa"), ("bpb", "text")):
            if suite in self.suites and not getattr(self, key):
                raise ValueError(f"suite {suite} needs eval.{key}")
        return self


class RedteamSection(Section):
    enabled: bool = True
    seeds: str = Field("world", description="world, an AdvBench .csv or a .jsonl of prompts (lmforge redteam)")
    split: Literal["train", "heldout"] = Field("train", description="world seeds: train, as the findings become "
                                               "training prompts (held-out seeds would leak into training)")
    attacks: list[str] = Field(default_factory=lambda: ["all"], description="attack names, or all")
    limit: int | None = Field(16, ge=1, description="at most N seeds")
    max_new_tokens: int = Field(48, ge=1)
    batch_size: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _attacks(self) -> RedteamSection:
        from ..redteam.attacks import ATTACKS, resolve

        try:
            resolve(self.attacks)
        except KeyError as e:
            raise ValueError(f"unknown attack {e.args[0]!r} (use {', '.join(ATTACKS)} or all)") from None
        return self


class LoopConfig(Section):
    out: str = Field("runs/loop", description="the loop's folder: OUT/round-001/..., OUT/report/, OUT/feedback.db")
    rounds: int = Field(2, ge=1, description="rounds to run (raise it later and run again to add rounds)")
    policy: str = Field(description="round 1's policy: a chat (SFT) model folder")
    seed: int = 0
    prompts: PromptsSection = PromptsSection()
    k: int = Field(4, ge=2, le=26, description="responses per prompt")
    k_start: int = Field(0, ge=0, description="from round 2: of the k responses per prompt, this many from round "
                         "1's policy (the start), the rest from the round's policy, shuffled: labels that compare "
                         "the new behaviour with the old show the reward model what RL learned to over-pay "
                         "(Llama 2 drew each comparison from different model variants); each share 2 or more; "
                         "0: all from the round's")
    sampling: SamplingParams = Field(GENERATE_SAMPLING.model_copy(update={"max_new_tokens": 48}),
                                     description="how each round's K responses are sampled (n is k)")
    generate_batch_size: int = Field(16, ge=1)
    feedback: FeedbackSection = FeedbackSection()
    update: UpdateSection = UpdateSection()
    eval: EvalSection = EvalSection()
    redteam: RedteamSection = RedteamSection()

    @property
    def path(self) -> Path:
        return Path(self.out)

    @model_validator(mode="after")
    def _stage_settings(self) -> LoopConfig:
        from .stage_configs import dpo_config, rl_config, rm_config

        if self.k_start and not 2 <= self.k_start <= self.k - 2:
            raise ValueError(f"k_start={self.k_start} with k={self.k}: the start's and the round's shares are each "
                             "sampled as a batch of 2 or more responses a prompt (e.g. k=4, k_start=2), or k_start=0")
        if self.sampling.temperature == 0:
            raise ValueError("sampling.temperature must be > 0: K greedy responses would be identical")
        placeholder = Path(self.out) / "round-000"
        if self.update.method == "dpo":
            dpo_config(self, placeholder, "policy", "train.jsonl", "heldout.jsonl")
        else:
            rm_config(self, placeholder, "backbone", "train.jsonl", "heldout.jsonl")
            rl_config(self, placeholder, "policy", "prompts.jsonl", "reward_model")
        return self
