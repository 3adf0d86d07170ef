"""``python -m course_lib room`` as a child process, for scripts: the tests, the browser test
and the sizing benchmark start the room exactly as an instructor does, and stop it as Ctrl+C
would (SIGTERM), then ask what is left running.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from ..serving.processes import ChildProcess, free_port

OPEN_LINE = "The room is open."


class RoomCommand:
    """The room on a free loopback port, with ``data`` as its folder."""

    def __init__(self, data: Path, code: str, max_users: int = 3, args=(), env: dict | None = None):
        self.data, self.code, self.port = Path(data), code, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [sys.executable, "-m", "course_lib", "room", "--data", str(self.data)]
        self.argv += ["--port", str(self.port), "--code", code, "--max-users", str(max_users)]
        self.argv += list(args)
        self.env = dict(os.environ if env is None else env)
        self.process: ChildProcess | None = None

    def start(self, timeout: float = 120.0) -> RoomCommand:
        log = self.data.parent / f"{self.data.name}-room.log"
        self.process = ChildProcess(self.argv, log, env=self.env).start()
        deadline = time.monotonic() + timeout
        while OPEN_LINE not in self.process.log():
            if not self.process.running() or time.monotonic() > deadline:
                output = self.process.log()[-3000:]
                self.process.stop()
                raise RuntimeError(f"the room did not open:\n{output}")
            time.sleep(0.3)
        return self

    def admin_password(self) -> str:
        return re.search(r"with the password (\S+)", self.process.log()).group(1)

    def stop(self) -> list[int]:
        """SIGTERM the command, wait for it to stop everything; return PIDs still running."""
        self.process.stop(grace=60)
        if "Stopped." not in self.process.log():
            raise RuntimeError(f"the room did not stop cleanly:\n{self.process.log()[-3000:]}")
        return self.process.leftovers()
