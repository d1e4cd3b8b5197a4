"""A torchrun worker ends through engine.distributed.exit_worker: its exit code kept, its threads joined and its
exit handlers run before the interpreter's finalization is skipped; any other process is left alone."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import atexit, pathlib, sys, threading, time
    from lmforge.engine import distributed
    out = pathlib.Path(sys.argv[1])
    distributed._joined = {joined}
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    def late():
        time.sleep(0.3)
        (out / "thread").write_text("joined")
    threading.Thread(target=late).start()
    print("last line", flush=False)  # buffered: must still reach the pipe
    distributed.exit_worker(3)
    (out / "returned").write_text("yes")
""")


def run(tmp_path: Path, joined: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(joined=joined), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)


def test_a_worker_exits_with_its_code_after_threads_and_exit_handlers(tmp_path: Path) -> None:
    proc = run(tmp_path, joined=True)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "last line" in proc.stdout
    assert (tmp_path / "atexit").read_text() == "ran" and (tmp_path / "thread").read_text() == "joined"
    assert not (tmp_path / "returned").exists()


def test_a_process_that_joined_no_group_returns_and_exits_normally(tmp_path: Path) -> None:
    proc = run(tmp_path, joined=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "returned").read_text() == "yes" and (tmp_path / "atexit").read_text() == "ran"
