"""Every command's --help renders its help text as typed: rich markup must not eat bracketed examples such as
``data.train=[fb.jsonl]`` or ``[default: ...]`` (a ``[word...]`` is a rich style tag unless escaped)."""
from __future__ import annotations

import re

import pytest

BRACKETED = re.compile(r"\[[^\[\]]*\]")  # innermost [...] groups


def commands():
    """(path, click command) for every command and sub-command of ``lmforge``."""
    import typer

    from lmforge.cli.main import app

    out, todo = [], [((), typer.main.get_command(app))]
    while todo:
        path, cmd = todo.pop()
        out.append((path, cmd))
        subs = getattr(cmd, "commands", None) or {}  # typer groups (typer vendors its own click)
        todo += [((*path, name), sub) for name, sub in sorted(subs.items())]
    return out


def source_texts(cmd) -> list[str]:
    """The help strings as written in the source (rich's escape ``\\[`` stands for a literal ``[``)."""
    texts = [cmd.help or "", cmd.epilog or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    return [t.replace("\\[", "[") for t in texts if t]


def squash(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


COMMANDS = commands()


def test_the_walk_finds_the_sub_commands() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"sft", "sft train", "sft inspect", "rm train", "export", "serve", "label init"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "lmforge" for p, _ in COMMANDS])
def test_help_keeps_every_bracket(path, cmd, monkeypatch) -> None:
    import typer.rich_utils
    from typer.testing import CliRunner

    from lmforge.cli.main import app

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 100_000)  # no wrapping inside a bracketed example
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    rendered = squash(result.output)
    assert "\\[" not in rendered, "an escape shown as typed"
    for text in source_texts(cmd):
        for group in BRACKETED.findall(text):
            assert squash(group) in rendered, f"`lmforge {' '.join(path)} --help` lost {group!r}"


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    from typer.testing import CliRunner

    from lmforge.cli.main import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lmforge {version('lmforge')}"
