"""One error type for bad user input.

Every reader, config loader and data format raises :class:`InputError` for input a user can fix.
The CLI prints it as a single line and exits with code 2; nothing else is written.
"""
from __future__ import annotations

from pathlib import Path

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input that names where it is: ``file:line: field 'x': message``."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line is not None else "")
        parts = [p for p in (where, f"field '{self.field}'" if self.field else "") if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (e.g. a non-finite loss); the last good checkpoint is kept."""
