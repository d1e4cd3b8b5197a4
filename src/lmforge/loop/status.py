"""Where a loop stands, read from its run folders and the feedback database (never from memory): the one place
that computes a round's status, for ``lmforge loop --status`` and the web app's admin page (:class:`LoopView`,
handed to the app by ``lmforge label serve --loop OUT``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError


def loop_status(cfg, store=None) -> list[dict[str, Any]]:
    """Per round: its batch, its steps (done or not), and for the first unfinished round what it waits for (the
    next step; at a feedback step with people, their progress read from the database; before RL, ``stopped``:
    the reward-model gate's message when it stops the round). Rounds after the first
    unfinished one have not started and are not listed. ``store``: the feedback database already open (the web
    app's); None opens the loop's own. Reads, never writes."""
    from .feedback import batch_name, human_status, open_store
    from .run import Round, step_done

    out: list[dict[str, Any]] = []
    for n in range(1, cfg.rounds + 1):
        rnd = Round(cfg, n, say=lambda _: None)
        steps = {name: step_done(name, folder) for name, folder, _ in rnd.steps()}
        row: dict[str, Any] = {"round": n, "batch": batch_name(cfg, n), "steps": steps}
        todo = next((name for name, ok in steps.items() if not ok), None)
        if todo is not None:
            row["next"] = todo
            stopped = _gate(rnd) if todo == rnd.rl_name and steps.get("rm_check") else None
            if stopped:
                row["stopped"] = stopped
            humans = [s for s in cfg.feedback.sources if s.kind == "human"]
            if todo == "feedback" and humans and steps["generate"]:
                own = store is None
                db = open_store(cfg) if own else store
                try:
                    if any(b.name == row["batch"] for b in db.batches()):
                        row["people"] = {**human_status(db, row["batch"], humans[0]),
                                         "quorum": humans[0].quorum}
                finally:
                    if own:
                        db.close()
        out.append(row)
        if todo is not None:
            break
    return out


def _gate(rnd) -> str | None:
    """The reward-model gate's message when it stops the round before RL (under the config as it is now)."""
    from ..errors import TrainingStopped

    try:
        rnd.check_reward_model()
    except TrainingStopped as e:
        return str(e)
    return None


def waits_for(row: dict[str, Any]) -> str | None:
    """What the round waits for, in words: ``feedback (people labelled 12/64, 3.5 h)``, ``ppo (stopped: ...)``;
    None when done."""
    if row.get("next") is None:
        return None
    text = row["next"]
    if row.get("stopped"):
        return f"{text} (stopped: {row['stopped']})"
    p = row.get("people")
    if p:
        text += f" (people labelled {p['done']}/{p['assigned']}, {p['hours_since_batch']} h)"
    return text


def status_line(row: dict[str, Any]) -> str:
    """``round 2: prompts+ generate+ feedback- ...  next: feedback (people labelled 12/64, 3.5 h)``."""
    line = f"round {row['round']}: " + " ".join(f"{k}{'+' if ok else '-'}" for k, ok in row["steps"].items())
    waiting = waits_for(row)
    return line + (f"  next: {waiting}" if waiting else "")


# what the admin page shows of OUT/summary.json's loop.round_N, in this order
FIGURES = (("win_rate_vs_round_1", "win rate vs round 1"), ("win_rate_vs_start", "win rate vs start"),
           ("attack_success_rate", "attack success"), ("previous_findings_success_rate", "last round's findings"),
           ("reward_model_accuracy_newest", "RM accuracy, newest labels"))


def _figure(r: dict[str, Any], key: str) -> str | None:
    value = r.get(key)
    if value is None:
        return None
    ci = r.get(f"{key}_ci95")
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


class LoopView:
    """A loop as the web app's admin page shows it: its folder ``OUT``, read again on every call (the config as
    the loop last wrote it to ``OUT/config.yaml``, the run folders, ``OUT/summary.json``), so it follows a loop
    that is running, waiting or has been given more rounds."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        if not (self.out / "config.yaml").is_file():
            raise InputError(f"{self.out} is not a loop's folder: no config.yaml (lmforge loop writes it first)",
                             file=str(self.out), field="--loop")
        self.config()  # a bad config stops the server at its start, not at the first page

    def config(self):
        from ..config import load_config
        from .config import LoopConfig

        cfg = load_config(LoopConfig, self.out / "config.yaml")
        return cfg.model_copy(update={"out": str(self.out)})  # where it is now (the loop may have run elsewhere)

    def database_url(self) -> str:
        """The loop's feedback database as a URL (``feedback.db``, else ``OUT/feedback.db``)."""
        from ..feedback.db import resolve_url

        cfg = self.config()
        return resolve_url(cfg.feedback.db or str(self.out / "feedback.db"))

    def report(self) -> Path | None:
        path = self.out / "report" / "report.html"
        return path if path.is_file() else None

    def rounds(self, store) -> list[dict[str, Any]]:
        """:func:`loop_status`'s rows, each with ``batch_exists``, ``waits_for`` (words) and ``figures`` ([(name, value)] from
        ``OUT/summary.json``, for rounds whose eval is done)."""
        summary_path = self.out / "summary.json"
        loop = json.loads(summary_path.read_text()).get("loop", {}) if summary_path.is_file() else {}
        rows = loop_status(self.config(), store)
        batches = {b.name for b in store.batches()}
        for row in rows:
            row["batch_exists"] = row["batch"] in batches
            row["waits_for"] = waits_for(row)
            r = loop.get(f"round_{row['round']}", {})
            row["figures"] = [(label, v) for key, label in FIGURES if (v := _figure(r, key)) is not None]
        return rows


__all__ = ["loop_status", "waits_for", "status_line", "LoopView"]
