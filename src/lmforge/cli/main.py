"""The ``lmforge`` command. Each stage registers its commands from its own module in this folder;
this file only assembles them and turns bad input into a one-line error with exit code 2."""
from __future__ import annotations

import os
import sys

import typer

from ..errors import EXIT_BAD_INPUT, InputError, TrainingStopped

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

app = typer.Typer(
    name="lmforge",
    help="The whole language-model life cycle: data, pre-training, SFT, human feedback, reward models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def package_version() -> str:
    """The installed distribution's version (what pip reports); the source's when run from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lmforge")
    except PackageNotFoundError:
        from .. import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"lmforge {package_version()}")
        raise typer.Exit()


# One entry per command module in this folder; each defines `register(app)`.
COMMAND_MODULES = [
    "data_cmd",
    "tokenizer_cmd",
    "pretrain_cmd",
    "demo_cmd",
    "generate_cmd",
    "label_cmd",
    "sft_cmd",
    "export_cmd",
    "rm_cmd",
    "dpo_cmd",
    "rl_cmd",
    "reft_cmd",
    "judge_cmd",
    "serve_cmd",
    "chat_cmd",
    "plan_cmd",
    "eval_cmd",
    "redteam_cmd",
    "loop_cmd",
]


@app.callback()
def _global_options(verbose: bool = typer.Option(
        False, "--verbose", help="also show third-party warnings and progress bars (transformers, peft, DDP)"),
                    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                                 help="print the version and exit")) -> None:
    from .common import quiet_third_party

    quiet_third_party(verbose)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    # typer handles usage errors, --help and exit codes itself (standalone mode, usage errors exit 2);
    # our own exceptions propagate out of it and are reported here.
    try:
        app(args=argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except TrainingStopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
