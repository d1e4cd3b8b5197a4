"""The ``lmforge`` command. Each stage registers its commands from its own module in this folder;
this file only assembles them and turns bad input into a one-line error with exit code 2."""
from __future__ import annotations

import os
import sys
import time

import typer

from ..errors import EXIT_BAD_INPUT, InputError, TrainingStopped

_STARTED = time.time()  # a command's recorded seconds include its own imports (torch, transformers) after this
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
    "split_cmd",
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
    "revise_cmd",
    "summarize_cmd",
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


TIMINGS_ENV = "LMFORGE_TIMINGS"


def record_timing(path: str, argv: list[str], seconds: float, code: int) -> None:
    """Append one JSON line (the command, its wall seconds, peak resident memory of this process and of its
    children such as torchrun workers, exit code) to ``path``: how a recipe script learns each stage's cost
    (``LMFORGE_TIMINGS=FILE``; read by ``lmforge summarize --timings``)."""
    import json
    import resource

    def gb(who: int) -> float:  # ru_maxrss is in KiB on Linux
        return resource.getrusage(who).ru_maxrss / 2**20

    row = {"command": next((a for a in argv if not a.startswith("-")), ""), "argv": argv,
           "seconds": round(seconds, 2), "peak_rss_gb": round(max(gb(resource.RUSAGE_SELF),
                                                                   gb(resource.RUSAGE_CHILDREN)), 3),
           "exit": code}
    with open(path, "a", encoding="utf-8") as f:  # one short append per command: whole lines
        f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    # typer handles usage errors, --help and exit codes itself (standalone mode, usage errors exit 2);
    # our own exceptions propagate out of it and are reported here.
    t0, code, ended = _STARTED if argv is None else time.time(), 0, False
    try:
        app(args=argv)
        ended = True
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        code, ended = EXIT_BAD_INPUT, True
        sys.exit(EXIT_BAD_INPUT)
    except TrainingStopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        code, ended = 1, True
        sys.exit(1)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        ended = True
        raise
    finally:
        if os.environ.get(TIMINGS_ENV) and os.environ.get("RANK", "0") == "0":
            record_timing(os.environ[TIMINGS_ENV], list(sys.argv[1:] if argv is None else argv),
                          time.time() - t0, code)
        # a torchrun worker ends here (engine.distributed.exit_worker says why); a crash keeps its traceback, and
        # a command that never imported the engine has no process group (nor torch to import now)
        joined = sys.modules.get("lmforge.engine.distributed")
        if ended and joined is not None:
            joined.exit_worker(code)


if __name__ == "__main__":
    main()
