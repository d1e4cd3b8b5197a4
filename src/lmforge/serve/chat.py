"""``lmforge chat``: a terminal conversation with one model, on the same engine as the server.

Lines are user turns; the answer is printed as it is generated (the server's :class:`~.streaming.Releaser`
decides what text is safe to print). Commands: ``/reset`` (keep only the system prompt), ``/undo`` (drop the
last exchange), ``/save FILE`` and ``/load FILE`` (the messages as JSON), ``/system TEXT``, ``/quit``.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..runs import atomic_write_text
from .engine import ChatEngine, EngineError, SamplingParams
from .streaming import Releaser

HELP = "commands: /reset, /undo, /save FILE, /load FILE, /system TEXT, /quit"


class Chat:
    def __init__(self, engine: ChatEngine, params: SamplingParams, system: str | None = None):
        self.engine, self.params, self.system = engine, params, system
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def undo(self) -> bool:
        """Drop the last user turn and the answer to it."""
        for k in range(len(self.messages) - 1, -1, -1):
            if self.messages[k]["role"] == "user":
                del self.messages[k:]
                return True
        return False

    def save(self, path: str) -> None:
        # atomic: a failed save never leaves a half-written conversation over the last good one
        atomic_write_text(Path(path), json.dumps(self.messages, indent=1, ensure_ascii=False) + "\n")

    def load(self, path: str) -> None:
        data = json.loads(Path(path).read_text())
        if not (isinstance(data, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in data)):
            raise ValueError(f"{path}: expected a JSON list of {{role, content}} messages")
        self.messages = [{"role": m["role"], "content": str(m["content"])} for m in data]

    def say(self, text: str, write: Callable[[str], None]) -> str:
        """One user turn: the answer, written piece by piece as it is generated, then kept in the history."""
        self.messages.append({"role": "user", "content": text})
        ids = self.engine.prompt_ids(self.messages)
        params = self.engine.check([ids], self.params.model_copy(update={"n": 1}))
        handle = self.engine.submit([ids], params)
        out = Releaser(self.engine.tokenizer, params.stop)
        try:
            for _, token, _ in handle.stream():
                write(out.add(token))
            (done,), = handle.result()
        except KeyboardInterrupt:
            handle.cancel()
            (done,), = handle.result()
        write(out.final(done.text))
        self.messages.append({"role": "assistant", "content": done.text})
        return done.text


def run(chat: Chat, read: Callable[[str], str], out: TextIO) -> None:
    """The read-answer loop until end of input or ``/quit``."""
    def write(s: str) -> None:
        if s:
            out.write(s)
            out.flush()
    write(f"chatting with {chat.engine.name}; {HELP}\n")
    while True:
        try:
            line = read("> ").strip()
        except EOFError:
            write("\n")
            return
        if not line:
            continue
        cmd, _, arg = line.partition(" ")
        try:
            if cmd == "/quit":
                return
            elif cmd == "/reset":
                chat.reset()
                write("(conversation reset)\n")
            elif cmd == "/undo":
                write("(last exchange removed)\n" if chat.undo() else "(nothing to undo)\n")
            elif cmd == "/save" and arg:
                chat.save(arg.strip())
                write(f"(saved {len(chat.messages)} messages to {arg.strip()})\n")
            elif cmd == "/load" and arg:
                chat.load(arg.strip())
                write(f"(loaded {len(chat.messages)} messages)\n")
            elif cmd == "/system":
                chat.system = arg.strip() or None
                chat.reset()
                write("(system prompt set; conversation reset)\n")
            elif cmd.startswith("/"):
                write(f"(unknown command; {HELP})\n")
            else:
                chat.say(line, write)
                write("\n")
        except (OSError, ValueError, EngineError) as e:
            if cmd not in ("/save", "/load"):
                chat.undo()  # the turn that failed is not kept
            write(f"(error: {e})\n")
