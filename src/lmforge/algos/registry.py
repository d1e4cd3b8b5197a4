"""Pick an algorithm by the name a user wrote, with a "did you mean" hint for a typo."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import TypeVar

from lmforge.errors import InputError

F = TypeVar("F", bound=Callable)


def pick(table: Mapping[str, F], name: str, what: str) -> F:
    """``table[name]``, or an :class:`InputError` naming the known choices and the closest one."""
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise InputError(f"unknown {what} '{name}'{hint}; choose one of: {', '.join(sorted(table))}")
