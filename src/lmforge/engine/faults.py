"""Fault injection for crash tests: ``LMFORGE_FAULT=kill-at-step:12`` or ``kill-in-checkpoint:10``
makes the process SIGKILL itself at that point, exactly as a machine failure would."""
from __future__ import annotations

import os
import signal


def maybe_kill(point: str, step: int) -> None:
    spec = os.environ.get("LMFORGE_FAULT", "")
    if not spec:
        return
    name, _, at = spec.partition(":")
    if name == point and at.isdigit() and int(at) == step:
        os.kill(os.getpid(), signal.SIGKILL)
