"""``lmforge loop``: rounds of generate → feedback → reward model → RL (or DPO) → eval → red team.

Each round is a folder of ordinary run folders (``OUT/round-001/generate``, ``feedback``, ``rm``, ``ppo``,
``eval``, ``redteam``), each written by the same recipe its own command runs. A step is done when its folder's
``summary.json`` exists (written last), so the loop keeps no state of its own: run it again after a crash, a
restart or a week of labelling and it continues at the first unfinished step of the first unfinished round
(a training step resumes from its last checkpoint). ``round.json`` records what each round used; it is rebuilt
from the run folders after every step and never read back to decide anything.

Round n: the policy is round n-1's RL (or DPO) output (round 1: ``policy``); the reward model starts from round
n-1's (round 1: ``update.reward_model``). Before RL, ``rm_check.json`` holds the new reward model's held-out pair
accuracy on the newest round's labels beside the previous reward model's on the same labels; a worse new model
stops the loop unless ``update.on_worse_reward_model: continue``.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import TrainingStopped
from ..runs import atomic_write_text
from .feedback import WaitingForLabels, feedback_step
from .prompts import write_round_prompts
from .stage_configs import dpo_config, rl_config, rm_config

SUMMARY = "summary.json"


def round_dir(cfg, n: int) -> Path:
    return cfg.path / f"round-{n:03d}"


def done(folder: Path) -> dict[str, Any] | None:
    path = folder / SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def _train(fn, cfg_obj) -> dict[str, Any]:
    """A training recipe, continued from its last checkpoint when an earlier attempt left one."""
    started = any((cfg_obj.run.path / "checkpoints").glob("step-*"))
    return fn(cfg_obj, resume=started, overwrite=not started)


class Round:
    """One round's inputs (from the previous round's folders) and its steps, in order."""

    def __init__(self, cfg, n: int, say: Callable[[str], None]):
        self.cfg, self.n, self.say = cfg, n, say
        self.dir = round_dir(cfg, n)
        self.prev = round_dir(cfg, n - 1) if n > 1 else None
        self.rl_name = cfg.update.method

    # ------------------------------------------------------------------ where this round starts from
    def policy_in(self) -> str:
        if self.prev is None:
            return self.cfg.policy
        return done(self.prev / self.rl_name)["final"]

    def reward_model_in(self) -> str:
        if self.prev is None:
            return self.cfg.update.reward_model or self.cfg.policy
        return done(self.prev / "rm")["final"]

    def policy_out(self) -> str | None:
        s = done(self.dir / self.rl_name)
        return s["final"] if s else None

    # ------------------------------------------------------------------ the steps
    def steps(self) -> list[tuple[str, Path, Callable[[], dict[str, Any]]]]:
        out = [("prompts", self.dir, self.prompts), ("generate", self.dir / "generate", self.generate),
               ("feedback", self.dir / "feedback", self.feedback)]
        if self.rl_name != "dpo":
            out += [("rm", self.dir / "rm", self.reward_model), ("rm_check", self.dir / "rm_check", self.rm_check)]
        out += [(self.rl_name, self.dir / self.rl_name, self.update), ("eval", self.dir / "eval", self.evaluate)]
        if self.cfg.redteam.enabled:
            out.append(("redteam", self.dir / "redteam", self.redteam))
        return out

    def prompts(self) -> dict[str, Any]:
        return write_round_prompts(self.cfg, self.dir, self.n, self.prev)

    def generate(self) -> dict[str, Any]:
        from ..runs import RunConfig
        from ..stages.generate import GenerateConfig, generate_batch

        c = self.cfg
        k_start = c.k_start if self.prev is not None else 0  # round 1's policy is the start

        def sample(model: str, name: str, k: int, root: Path) -> dict[str, Any]:
            gen = GenerateConfig(run=RunConfig(name=name, root=str(root)), model=model,
                                 prompts=str(self.dir / "prompts.jsonl"), k=k, batch_size=c.generate_batch_size,
                                 sampling=c.sampling.model_copy(update={"seed": c.seed + self.n}))
            return generate_batch(gen, overwrite=True)  # summary.json is written last: a partial folder is redone

        if not k_start:
            return sample(self.policy_in(), "generate", c.k, self.dir)
        return self.generate_mixed(sample, k_start)

    def generate_mixed(self, sample, k_start: int) -> dict[str, Any]:
        """``k - k_start`` responses from the round's policy and ``k_start`` from the start, one batch: each
        response names its model, the order shuffled per prompt (seeded) so no position means a model."""
        import random

        from ..data.readers import write_jsonl_atomic
        from ..feedback.batchfile import BATCH_FILE, read_batch

        c, t0, folder = self.cfg, time.time(), self.dir / "generate"
        current = self.policy_in()
        parts = {"current": (current, c.k - k_start), "start": (c.policy, k_start)}
        batches = {}
        for name, (model, k) in parts.items():
            sample(model, name, k, folder)
            batches[name] = list(read_batch(folder / name / BATCH_FILE))
        rows = []
        for now, then in zip(batches["current"], batches["start"], strict=True):  # one prompts file, one order
            responses = [r.model_copy(update={"model": current}) for r in now.responses] + \
                        [r.model_copy(update={"model": c.policy}) for r in then.responses]
            random.Random(f"{c.seed}/{self.n}/{now.id}").shuffle(responses)
            item = now.model_copy(update={"responses": responses,
                                          "meta": {**now.meta, "k_start": k_start, "start_model": c.policy}})
            rows.append(item.model_dump(mode="json"))
        write_jsonl_atomic(folder / BATCH_FILE, rows)
        summary = {"prompts": len(rows), "k": c.k, "k_start": k_start, "responses": len(rows) * c.k,
                   "model": current, "start_model": c.policy, "seconds": round(time.time() - t0, 2),
                   "batch": str(folder / BATCH_FILE)}
        atomic_write_text(folder / SUMMARY, json.dumps(summary, indent=1) + "\n")
        return summary

    def feedback(self) -> dict[str, Any]:
        return feedback_step(self.cfg, self.n, self.dir, self.say)

    def reward_model(self) -> dict[str, Any]:
        from ..stages.rm import train_rm

        fb = self.dir / "feedback"
        return _train(train_rm, rm_config(self.cfg, self.dir, self.reward_model_in(), str(fb / "train.jsonl"),
                                          str(fb / "heldout.jsonl")))

    def rm_check(self) -> dict[str, Any]:
        from .measure import reward_model_accuracy

        folder = self.dir / "rm_check"
        new = done(self.dir / "rm")
        start = self.reward_model_in()
        previous = None
        if (Path(start) / "reward.json").is_file():  # a reward model to compare with (not a bare backbone)
            previous = reward_model_accuracy(start, self.dir / "feedback" / "heldout.jsonl")["heldout_pair_accuracy"]
        check = {"reward_model": new["final"], "heldout_pair_accuracy_newest": new.get("heldout_pair_accuracy"),
                 "heldout_pairs": new.get("heldout_pairs"), "previous_reward_model": start if previous is not None
                 else None, "previous_heldout_pair_accuracy_newest": previous,
                 "previous_round_own_accuracy": (done(self.prev / "rm_check") or {}).get(
                     "heldout_pair_accuracy_newest") if self.prev else None}
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / SUMMARY, json.dumps(check, indent=1) + "\n")
        return check

    def update(self) -> dict[str, Any]:
        prompts, policy = str(self.dir / "prompts.jsonl"), self.policy_in()
        if self.rl_name == "dpo":
            from ..stages.dpo import dpo

            fb = self.dir / "feedback"
            return _train(dpo, dpo_config(self.cfg, self.dir, policy, str(fb / "train.jsonl"),
                                          str(fb / "heldout.jsonl")))
        from ..stages.rl import rl_train

        self.check_reward_model()
        return _train(rl_train, rl_config(self.cfg, self.dir, policy, prompts, done(self.dir / "rm")["final"]))

    def check_reward_model(self) -> None:
        """The off-policy gate: read from rm_check.json, decided by the config as it is now (so setting
        ``update.on_worse_reward_model: continue`` and running again goes on)."""
        c = done(self.dir / "rm_check")
        u = self.cfg.update
        new, same = c["heldout_pair_accuracy_newest"], c["previous_heldout_pair_accuracy_newest"]
        own = c.get("previous_round_own_accuracy")
        self.say(f"round {self.n}: reward model held-out accuracy on this round's labels {_pct(new)} "
                 f"(previous reward model on them {_pct(same)}; previous round on its own {_pct(own)}; "
                 f"{c['heldout_pairs']} pairs)")
        old, what = (same, "the previous reward model on the same labels") if u.compare_with == "previous_model" \
            else (own, "the previous round's reward model on its newest labels")
        if worse(new, old, u.tolerance) and u.on_worse_reward_model == "stop":
            raise TrainingStopped(
                f"round {self.n}: the new reward model is worse on the newest labels than {what} "
                f"({_pct(new)} < {_pct(old)}; {self.dir / 'rm_check' / SUMMARY}); nothing was trained on it. "
                "Label more, change update.rm, or set update.on_worse_reward_model=continue and run again")

    def evaluate(self) -> dict[str, Any]:
        from .measure import eval_policy

        refs = {"start": self.cfg.policy}
        if self.n > 1:
            refs["round_1"] = done(round_dir(self.cfg, 1) / self.rl_name)["final"]
        return eval_policy(self.cfg, f"round-{self.n:03d}", self.policy_out(), self.dir / "eval", refs)

    def redteam(self) -> dict[str, Any]:
        from .measure import redteam_policy

        return redteam_policy(self.cfg, self.policy_out(), self.dir / "redteam", self.prev)

    # ------------------------------------------------------------------ the record
    def record(self) -> dict[str, Any]:
        """round.json: which model, data and labels this round used (from its run folders)."""
        d = self.dir
        prompts = d / "prompts.jsonl"
        fb, rm, upd = done(d / "feedback") or {}, done(d / "rm") or {}, done(d / self.rl_name) or {}
        rec = {
            "round": self.n, "policy_in": self.policy_in() if (self.prev is None or done(self.prev / self.rl_name))
            else None, "policy_out": upd.get("final"), "method": self.rl_name,
            "prompts": str(prompts) if prompts.exists() else None,
            "findings_from": str(self.prev / "redteam" / "findings" / "prompts.jsonl") if self.prev else None,
            "batch": fb.get("batch"), "labels": {k: fb.get(k) for k in ("labels_this_round", "labels_all_rounds",
                                                                       "labels_by_source", "label_ids_this_round")},
            "preferences": {"train": fb.get("train"), "heldout": fb.get("heldout"),
                            "train_records": fb.get("train_records"), "heldout_records": fb.get("heldout_records")},
            "steps": {name: done(folder) is not None if name != "prompts" else prompts.exists()
                      for name, folder, _ in self.steps()},
        }
        if self.rl_name != "dpo":
            rec["reward_model_in"] = self.reward_model_in() if (self.prev is None or done(self.prev / "rm")) \
                else None
            rec["reward_model_out"] = rm.get("final")
            rec["rm_check"] = done(d / "rm_check")
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "round.json", json.dumps(rec, indent=1) + "\n")
        return rec


def worse(new: float | None, old: float | None, tolerance: float) -> bool:
    """Whether the new reward model's accuracy on the newest labels is below the previous one's by more than
    ``tolerance`` (unknown on either side: not worse, nothing to compare)."""
    return new is not None and old is not None and new < old - tolerance


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def step_done(name: str, folder: Path) -> bool:
    return (folder / "prompts.jsonl").exists() if name == "prompts" else done(folder) is not None


def run_loop(cfg, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or continue) the loop; returns ``OUT/summary.json``'s content. Raises :class:`WaitingForLabels` when
    people have not labelled enough yet, :class:`TrainingStopped` at a failed reward-model check."""
    from ..config import dump_config

    cfg.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.path / "config.yaml", dump_config(cfg))
    for n in range(1, cfg.rounds + 1):
        rnd = Round(cfg, n, say)
        for name, folder, fn in rnd.steps():
            if step_done(name, folder):
                continue
            say(f"round {n}: {name}")
            t0 = time.time()
            try:
                fn()
            finally:
                rnd.record()
            say(f"round {n}: {name} done in {time.time() - t0:.1f} s")
        rnd.record()
        write_loop_report(cfg, n)
    return write_loop_report(cfg, cfg.rounds)


def write_loop_report(cfg, last: int) -> dict[str, Any]:
    """OUT/report/ (``lmforge eval``'s report, one entry per round's policy) and OUT/summary.json (per round:
    the reward model's accuracy on its newest labels, attack success rates, the HHH figures)."""
    from ..eval.report import write_report

    entries, rounds = [], {}
    for n in range(1, last + 1):
        d = round_dir(cfg, n)
        ev = done(d / "eval")
        if ev is None:
            continue
        entries.append(ev)
        red, check = done(d / "redteam") or {}, done(d / "rm_check") or {}
        rounds[f"round_{n}"] = {
            "policy": ev["model"], "reward_model_accuracy_newest": check.get("heldout_pair_accuracy_newest"),
            "previous_reward_model_accuracy_newest": check.get("previous_heldout_pair_accuracy_newest"),
            "attack_success_rate": (red.get("successes", 0) / red["attempts"]) if red.get("attempts") else None,
            "previous_findings_success_rate": (red.get("previous_findings") or {}).get("success_rate"),
            "hhh": {f["name"]: f["value"] for f in ev["figures"]}}
        for ref, c in (ev.get("compare") or {}).items():
            rounds[f"round_{n}"][f"win_rate_vs_{ref}"] = c["win_rate"]
            rounds[f"round_{n}"][f"win_rate_vs_{ref}_ci95"] = c["ci95"]
            rounds[f"round_{n}"][f"kl_to_{ref}"] = c["kl"]
    summary = {"rounds_done": len(entries), "rounds": cfg.rounds, "loop": rounds}
    if entries:
        write_report(cfg.path / "report", entries, [round_dir(cfg, n) for n in range(1, last + 1)],
                     notes={"loop": rounds})
        summary["report"] = str(cfg.path / "report" / "report.html")
    atomic_write_text(cfg.path / SUMMARY, json.dumps(summary, indent=1) + "\n")
    return summary


__all__ = ["run_loop", "Round", "WaitingForLabels", "worse"]
