"""``lmforge ppo | grpo | rloo [CONFIG] [k=v ...]``: RL fine-tuning of a chat model against a reward."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, OVERWRITE, RESUME, print_summary

HELP = {
    "ppo": "PPO with a KL penalty to the reference in the reward, a critic (value head or the reward model), "
           "GAE and clipped policy and value losses.",
    "grpo": "GRPO (group-normalised advantages, clipping, k3 KL to the reference as a loss term; Dr. GRPO and "
            "DAPO variants by rl.scale, rl.clip_high, rl.loss_aggregation, rl.mask_truncated).",
    "rloo": "RLOO (REINFORCE with the leave-one-out baseline of rl.group_size sibling responses).",
}
KEYS = """

        Keys: model.path (required); reward.terms=[{kind: model, path: RM_DIR} | {kind: function, function:
        module:fn}]; prompts.source=world|FILE.jsonl; rl.rollouts, rl.prompts_per_rollout, rl.group_size,
        rl.ppo_epochs, rl.kl_coef, rl.kl_target, rl.kl_budget, rl.critic=shared|reward_model, rl.vf_coef;
        sampling.max_new_tokens, sampling.temperature; peft.method=none|lora; train.batch_size (responses
        per optimizer step), train.lr; run.name. train.steps is rollouts x ppo_epochs x minibatches.
        Writes runs/RUN_NAME/: config.yaml, metrics.jsonl, samples.jsonl, checkpoints/ (with the rollout
        buffer: --resume is exact), final/ (model, or adapter), value_head.pt or critic/, summary.json.
        """


def register(app: typer.Typer) -> None:
    for name in ("ppo", "grpo", "rloo"):
        _command(app, name)


def _command(app: typer.Typer, algorithm: str) -> None:
    def cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME, overwrite: bool = OVERWRITE) -> None:
        from ..config import load_config, split_args
        from ..errors import InputError
        from ..stages.rl import RLConfig, rl_train

        path, overrides = split_args(args)
        cfg = load_config(RLConfig, path, overrides, base={"rl": {"algorithm": algorithm},
                                                           "run": {"name": algorithm}})
        if cfg.rl.algorithm != algorithm:
            raise InputError(f"the config asks for rl.algorithm={cfg.rl.algorithm}, but the command is "
                             f"'lmforge {algorithm}'", field="rl.algorithm")
        print_summary(algorithm, rl_train(cfg, resume=resume, overwrite=overwrite))

    cmd.__doc__ = HELP[algorithm] + KEYS
    app.command(algorithm)(cmd)
