"""``lmforge reft [CONFIG] [k=v ...]``: reasoning with reinforced fine-tuning (SFT warm-up, then RL)."""
from __future__ import annotations

import typer

from .common import CONFIG_ARGS, OVERWRITE, RESUME, config_from_args, print_summary


def register(app: typer.Typer) -> None:
    @app.command("reft")
    def reft_cmd(args: list[str] | None = CONFIG_ARGS, resume: bool = RESUME, overwrite: bool = OVERWRITE) -> None:
        """ReFT: an SFT warm-up on worked solutions, then GRPO/PPO/RLOO against a verifiable reward; accuracy
        before, after the warm-up and after RL, with pass@k and majority vote, on held-out problems.

        Keys: model.path (required); data.source=world|FILE.jsonl (GSM8K: question, answer ending '#### N'); data.eval_source, data.eval_size, data.train_limit, data.question_field, data.answer_field, data.solution_field, data.kind_field; data.world.train, data.world.eval, data.world.eval_kinds; sft.* (the `lmforge sft` keys: sft.epochs, sft.train.lr, sft.peft.method, ...); rl.* (the `lmforge grpo` keys: rl.rl.algorithm, rl.rl.group_size, rl.rl.rollouts, rl.rl.drop_equal_groups, rl.reward.terms=[{kind: function, function: module:fn, kwargs: {partial: 0.2}}], rl.sampling.max_new_tokens, rl.train.lr, ...); eval.k, eval.max_new_tokens, eval.base; skip_sft, skip_rl; run.name.

        Writes runs/RUN_NAME/: config.yaml, data/ (sft.jsonl, rl_prompts.jsonl, eval.jsonl), sft/ and rl/ (the stages' run folders), eval_base.json, eval_sft.json, eval_rl.json, summary.json.
        """
        from ..stages.reft import ReftConfig, reft_train

        cfg = config_from_args(ReftConfig, args)
        print_summary("reft", reft_train(cfg, resume=resume, overwrite=overwrite))
