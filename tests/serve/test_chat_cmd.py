"""``lmforge chat`` driven through a pseudo-terminal: a message in, the streamed answer out, the commands."""
import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest


class Terminal:
    def __init__(self, args, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 90.0) -> str:
        end = time.monotonic() + timeout
        while text not in self.seen:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"never saw {text!r}; got:\n{self.seen[-2000:]}")
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    pass
        at = self.seen.index(text) + len(text)
        before, self.seen = self.seen[:at], self.seen[at:]
        return before

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.slow
def test_chat_in_a_terminal(chat_model_path, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    term = Terminal([sys.executable, "-c", "from lmforge.cli.main import app; app()", "chat", str(chat_model_path),
                     "--temperature", "0", "--max-tokens", "4", "--system", "Be brief."], env)
    try:
        term.expect("/quit\r\n")
        term.expect("> ")
        term.send("Is Paris the capital?")
        answer = term.expect("> ")
        assert answer.replace("\r", "").endswith("A\n> ")  # the tiny model's greedy answer, then the prompt
        saved = tmp_path / "conv.json"
        term.send(f"/save {saved}")
        term.expect("saved 3 messages")
        assert [m["role"] for m in json.loads(saved.read_text())] == ["system", "user", "assistant"]
        term.send("/undo")
        term.expect("(last exchange removed)")
        term.send("/undo")
        term.expect("(nothing to undo)")
        term.send(f"/load {saved}")
        term.expect("(loaded 3 messages)")
        term.send("/reset")
        term.expect("(conversation reset)")
        term.send(f"/save {saved}")
        term.expect("saved 1 messages")  # only the system prompt is left
        term.send("/quit")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
