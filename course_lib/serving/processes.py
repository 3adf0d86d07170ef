"""Child processes that always end: any command (``ChildProcess``, e.g. JupyterLab) and the
course's model server (``ServerProcess``, ``python -m course_lib serve``).

Lesson 07, the unit tests, the hackathon server's tests and the browser tests all start servers
through these, so that one piece of code makes sure nothing is left running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .cli import DEFAULT_HOST
from .validation import TOKEN_ENV


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ChildProcess:
    """A command run as a child process in its own process group, its output in a log file.

    ``stop()`` ends the group and every descendant that left it (Jupyter starts kernels in their
    own sessions), politely first, then by force; it also runs at interpreter exit. Use it as a
    context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | os.PathLike | None = None,
        *,
        env: dict | None = None,
        cwd: str | os.PathLike | None = None,
    ):
        self.argv, self.env, self.cwd = list(argv), env, cwd
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log = None
        self._descendants: dict[int, object] = {}  # pid -> psutil.Process, seen while running

    def start(self) -> ChildProcess:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="course-child-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log = open(self.log_path, "wb")
        group = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            if os.name == "nt"
            else {"start_new_session": True}
        )
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            **group,
        )
        atexit.register(self.stop)
        return self

    def log(self) -> str:
        """Everything the process has written so far."""
        path = self.log_path
        return path.read_text(errors="replace") if path and path.exists() else ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for_http(
        self, url: str, timeout: float, what: str = "the server", verify=True
    ) -> None:
        """Poll ``url`` until it answers 200; fail at once, with the log, if the process exits.
        ``verify`` is httpx's (an ``ssl.SSLContext`` that trusts a self-signed certificate)."""
        import httpx

        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{what} exited with status {self.process.returncode} before it answered "
                    f"{url}:\n{self.log()[-3000:]}"
                )
            self._remember_descendants()
            try:
                answer = httpx.get(url, timeout=2.0, trust_env=False, verify=verify)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last_error = exc
            time.sleep(0.2)
        raise TimeoutError(
            f"{what} did not answer {url} within {timeout:.0f} s (last error: {last_error}):\n"
            f"{self.log()[-3000:]}"
        )

    def _remember_descendants(self) -> None:
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group, wait, SIGKILL what is left, then end any descendant that
        left the group. Safe to call twice; returns the exit status."""
        import psutil

        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._remember_descendants()
            self._signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_BREAK_EVENT)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
                proc.wait(grace)
        if os.name != "nt":  # anything still in the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        alive = [p for p in self._descendants.values() if _alive(p)]
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self._log and not self._log.closed:
            self._log.close()
        atexit.unregister(self.stop)
        return proc.returncode

    def leftovers(self) -> list[int]:
        """PIDs of this process's group or of its known descendants still running (after
        ``stop()`` this should be empty)."""
        import psutil

        if self.process is None:
            return []
        left = {p.pid for p in self._descendants.values() if _alive(p)}
        if os.name != "nt":
            for p in psutil.process_iter(["pid"]):
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if os.getpgid(p.pid) == self.process.pid and _alive(p):
                        left.add(p.pid)
        return sorted(left)

    def _signal(self, sig) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.name == "nt":
                self.process.send_signal(sig)
            else:
                os.killpg(self.process.pid, sig)

    def __enter__(self):
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _alive(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ServerProcess(ChildProcess):
    """``python -m course_lib serve`` as a child process on a free loopback port.

    ``start()`` returns once ``GET /health`` answers. The server also stops by itself when this
    process dies (``--exit-with-parent``), so no server outlives a killed notebook kernel.

        with ServerProcess(model_dir) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        model: str | os.PathLike,
        backend: str = "onnx",
        host: str = DEFAULT_HOST,
        port: int | None = None,
        token: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike | None = None,
        tls: tuple[str | os.PathLike, str | os.PathLike] | None = None,
    ):
        self.model, self.backend, self.host = str(model), backend, host
        self.tls = (str(tls[0]), str(tls[1])) if tls else None  # (certificate, key), PEM files
        self.port = port or free_port(host)
        self.token, self.extra_args, self.startup_timeout = token, list(extra_args), startup_timeout
        env = dict(os.environ)
        env.pop(TOKEN_ENV, None)
        if token:
            env[TOKEN_ENV] = token
        super().__init__(self.command(), log_path, env=env)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def verify(self):
        """What httpx's ``verify=`` needs to talk to this server: True for plain HTTP, else an
        ``ssl.SSLContext`` that trusts the server's own (self-signed) certificate."""
        import ssl

        return ssl.create_default_context(cafile=self.tls[0]) if self.tls else True

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "course_lib",
            "serve",
            "--model",
            self.model,
            "--backend",
            self.backend,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--exit-with-parent",
            *(["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]] if self.tls else []),
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        super().start()
        try:
            self.wait_for_http(
                self.url + "/health", self.startup_timeout, "the server", self.verify()
            )
        except BaseException:  # exited, timed out, or Ctrl+C while waiting: leave nothing behind
            self.stop()
            raise
        return self
