"""The client side of the service: run a server process, send it bad input, load-test it.

Lesson 07, the unit tests and the browser tests all start servers through ``ServerProcess``
(``python -m course_lib serve``) or ``ChildProcess`` (any command, e.g. JupyterLab), so that one
piece of code makes sure nothing is left running.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .cli import DEFAULT_HOST
from .validation import MAX_BODY_BYTES, MAX_TEXT_CHARS, MAX_TEXTS, TOKEN_ENV


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

    def wait_for_http(self, url: str, timeout: float, what: str = "the server") -> None:
        """Poll ``url`` until it answers 200; fail at once, with the log, if the process exits."""
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
                if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
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
    ):
        self.model, self.backend, self.host = str(model), backend, host
        self.port = port or free_port(host)
        self.token, self.extra_args, self.startup_timeout = token, list(extra_args), startup_timeout
        env = dict(os.environ)
        env.pop(TOKEN_ENV, None)
        if token:
            env[TOKEN_ENV] = token
        super().__init__(self.command(), log_path, env=env)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

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
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        super().start()
        try:
            self.wait_for_http(self.url + "/health", self.startup_timeout, "the server")
        except BaseException:  # exited, timed out, or Ctrl+C while waiting: leave nothing behind
            self.stop()
            raise
        return self


# --------------------------------------------------------------------------- bad input


@dataclass
class BadInput:
    """One malformed request and the status it must get."""

    case: str
    body: bytes | None
    expected_status: int
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    method: str = "POST"
    path: str = "/predict"
    needs_token: bool = False  # only meaningful when the server has a token


def bad_inputs(
    max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS, max_body: int = MAX_BODY_BYTES
) -> list[BadInput]:
    """The bad requests the service must answer with a 4xx JSON error (tests and lesson 07)."""

    def j(obj) -> bytes:
        return json.dumps(obj).encode()

    auth_json = {"Content-Type": "application/json", "Authorization": "Bearer not-the-token"}
    return [
        BadInput("non-JSON body", b"this is not JSON", 400),
        BadInput("invalid UTF-8", b'{"text": "caf\xe9 \xff"}', 400),
        BadInput("JSON nested too deeply", b"[" * 50_000, 400),
        BadInput("wrong Content-Type", j({"text": "hello"}), 415, {"Content-Type": "text/plain"}),
        BadInput("wrong type: number", j({"text": 42}), 422),
        BadInput("wrong type: list of numbers", j({"text": ["ok", 3]}), 422),
        BadInput("wrong type: body is a list", j(["hello"]), 422),
        BadInput("missing field", j({}), 422),
        BadInput("unknown field", j({"text": "hello", "lang": "en"}), 422),
        BadInput("empty string", j({"text": ""}), 422),
        BadInput("blank string", j({"text": "   \n"}), 422),
        BadInput("empty list", j({"text": []}), 422),
        BadInput(
            f"list over the limit ({max_texts + 1} texts)",
            j({"text": ["hi"] * (max_texts + 1)}),
            422,
        ),
        BadInput(
            f"text over the limit ({max_chars + 1} chars)", j({"text": "a" * (max_chars + 1)}), 422
        ),
        BadInput("lone surrogate", b'{"text": "\\ud800"}', 422),
        BadInput(f"body over the limit (> {max_body} bytes)", j({"text": "b" * max_body}), 413),
        BadInput("unknown path", None, 404, {}, "GET", "/nope"),
        BadInput("wrong method", None, 405, {}, "GET", "/predict"),
        BadInput("missing token", j({"text": "hello"}), 401, needs_token=True),
        BadInput("wrong token", j({"text": "hello"}), 403, auth_json, needs_token=True),
    ]


def send_bad_inputs(
    url: str, token: str | None = None, cases: Sequence[BadInput] | None = None
) -> list[dict]:
    """Send each bad request to a running server; one row per case: status, error, and whether
    it was the expected one.

    Without a token on the server, the token cases are skipped. With one, every other case sends
    the right token, so that it tests what it says.
    """
    import httpx

    rows = []
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
        for c in cases or bad_inputs():
            if c.needs_token and not token:
                continue
            headers = dict(c.headers)
            if token and not c.needs_token:
                headers["Authorization"] = f"Bearer {token}"
            r = client.request(c.method, c.path, content=c.body, headers=headers)
            try:
                body = r.json()
            except ValueError:
                body = {"error": "(not JSON)", "message": r.text[:80]}
            ok = r.status_code == c.expected_status and isinstance(body, dict) and "error" in body
            rows.append(
                {
                    "case": c.case,
                    "status": r.status_code,
                    "expected": c.expected_status,
                    "ok": ok,
                    "error": body.get("error"),
                    "message": str(body.get("message", ""))[:90],
                }
            )
    return rows


# --------------------------------------------------------------------------- load test


@dataclass
class LoadTestResult:
    """Latencies of a load test, in ms, and its errors."""

    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        return (
            f"{self.requests} requests, concurrency {self.concurrency}: {self.errors} errors, "
            f"{self.requests_per_s:.0f} req/s, latency p50 {self.percentile(50):.1f} ms, "
            f"p95 {self.percentile(95):.1f} ms, p99 {self.percentile(99):.1f} ms"
        )


def littles_law_latency_ms(concurrency: float, requests_per_s: float) -> float:
    """Little's law: the mean time a request spends in the system, ``C / X``, in ms.

    With ``concurrency`` (C) requests in flight on average and ``requests_per_s`` (X) of them
    finishing per second, each one stays ``C / X`` seconds, whatever happens inside.
    """
    if requests_per_s <= 0:
        raise ValueError(f"requests_per_s must be > 0, got {requests_per_s!r}")
    return 1000.0 * concurrency / requests_per_s


def check_mean_latency(fn, verbose: bool = True):
    """Checker for ``fn(concurrency, requests_per_s) -> mean latency in ms`` (Little's law);
    returns the function to use from here on."""
    from ..tooling.exercises import Case, check_exercise

    hint = (
        "C requests are in the system at any moment and X leave it each second; how long "
        "until one that just arrived has left? Answer in milliseconds."
    )
    cases = [
        Case("one request at a time, 100 requests/s", (1, 100.0), hint=hint),
        Case("16 in flight, 250 requests/s", (16, 250.0), hint=hint),
        Case(
            "64 in flight, 80 requests/s",
            (64, 80.0),
            hint="more requests in flight at the same throughput means a longer wait each.",
        ),
    ]

    def rounded(f):  # to the microsecond, so that the order of * and / does not matter
        return lambda *args: round(float(f(*args)), 3)

    result = check_exercise(
        "Little's law", rounded(fn), rounded(littles_law_latency_ms), cases, verbose=verbose
    )
    return fn if result.passed else littles_law_latency_ms


def plot_latency_histograms(runs: dict[str, LoadTestResult], ax=None, title: str | None = None):
    """One histogram per load test on a shared log-spaced axis, with its p50 (solid), p95
    (dashed) and p99 (dotted) as vertical lines; the legend sits beside the axes."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    from ..measuring import plain_log_ticks

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    all_ms = np.concatenate([r.latencies_ms for r in runs.values()])
    bins = np.logspace(np.log10(all_ms.min()), np.log10(all_ms.max()), 70)
    styles = ((50, "-"), (95, "--"), (99, ":"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, r), color in zip(runs.items(), colors):
        ax.hist(
            r.latencies_ms,
            bins=bins,
            alpha=0.55,
            color=color,
            density=True,
            label=f"{name}: {r.requests_per_s:.0f} req/s",
        )
        for q, style in styles:
            ax.axvline(r.percentile(q), color=color, ls=style, lw=1)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="gray", ls=style, lw=1, label=f"p{q}") for q, style in styles]
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("latency per request, seen by the client (ms, log scale)")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(
        handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )
    return ax


def run_coroutine(coro):
    """``asyncio.run`` that also works inside Jupyter, whose event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def load_test(
    url: str,
    texts: Sequence[str],
    requests: int = 2000,
    concurrency: int = 16,
    token: str | None = None,
    texts_per_request: int = 1,
    timeout: float = 30.0,
    progress: bool = False,
) -> LoadTestResult:
    """``requests`` POSTs to ``url + "/predict"``, ``concurrency`` in flight at any time.

    Request ``i`` sends ``texts_per_request`` texts starting at ``texts[i % len(texts)]``. An error
    is any non-200 answer or a failed connection. Latency is measured by the client, from
    sending to the full answer, so it includes queueing in the server.
    """
    if requests < 1 or concurrency < 1 or not texts:
        raise ValueError(
            f"need requests >= 1, concurrency >= 1 and some texts; got {requests}, {concurrency}, "
            f"{len(texts)} texts"
        )
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    texts = list(texts)

    async def run() -> LoadTestResult:
        latencies, samples = [], []
        errors = 0
        counter = iter(range(requests))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=requests, desc=f"load test ({concurrency} concurrent)", leave=False)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url, timeout=timeout, limits=limits, trust_env=False, headers=headers
        ) as client:

            async def worker():
                nonlocal errors
                for i in counter:
                    batch = [texts[(i + j) % len(texts)] for j in range(texts_per_request)]
                    body = {"text": batch[0] if texts_per_request == 1 else batch}
                    start = time.perf_counter()
                    try:
                        r = await client.post("/predict", json=body)
                        ok = r.status_code == 200
                        problem = f"{r.status_code}: {r.text[:120]}"
                    except httpx.HTTPError as exc:
                        ok, problem = False, f"{type(exc).__name__}: {exc}"
                    if ok:
                        latencies.append((time.perf_counter() - start) * 1e3)
                    else:
                        errors += 1
                        if len(samples) < 5:
                            samples.append(problem)
                    if bar is not None:
                        bar.update()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        return LoadTestResult(requests, concurrency, seconds, latencies, errors, samples)

    return run_coroutine(run())
