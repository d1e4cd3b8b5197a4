"""Progress display: a rich bar with loss, tokens/s and ETA on a terminal; plain log lines otherwise."""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, total: int, start: int, description: str, enabled: bool = True, plain_every: int = 0):
        self.enabled = enabled
        self.total = total
        self.tty = sys.stderr.isatty()
        self.plain_every = plain_every or max(1, total // 10)
        self.t0 = time.perf_counter()
        self.start = start
        self.bar = None
        if enabled and self.tty:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task(description, total=total, completed=start, info="")
            self.bar.start()
        elif enabled:
            print(f"{description}: steps {start}..{total}", file=sys.stderr, flush=True)

    def update(self, step: int, info: dict[str, float]) -> None:
        if not self.enabled:
            return
        text = "  ".join(_fmt(k, v) for k, v in info.items())
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=text)
        elif step % self.plain_every == 0 or step == self.total:
            elapsed = time.perf_counter() - self.t0
            done = max(1, step - self.start)
            eta = elapsed / done * (self.total - step)
            print(f"step {step}/{self.total}  {text}  eta {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fmt(key: str, value: float) -> str:
    if key in ("tok/s",):
        return f"{key} {value:,.0f}"
    return f"{key} {value:.4g}"
