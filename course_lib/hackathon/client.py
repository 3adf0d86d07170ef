"""Talking to the submission server over HTTP (what a team's script does), and starting one as
a child process (lesson 10's demonstration and the tests).

    with SubmissionServer(teams_file, answers_file, data_dir) as server:
        answer = submit_file(server.url, server.tokens["alpha"], "alpha.csv")
        print(format_board(fetch_board(server.url)))
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..serving.processes import ChildProcess, free_port
from .teams import ADMIN_FILE, read_tokens

TIMEOUT_S = 30.0
SERVICE_TIMEOUT_S = 300.0  # scoring a service asks it every challenge tweet


def _client(timeout: float = TIMEOUT_S):
    import httpx

    return httpx.Client(timeout=timeout, trust_env=False)  # no proxy: the server is local


def _auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def submit_file(url: str, token: str, path: str | Path, team: str | None = None) -> dict:
    """Upload a submission (``POST /api/submissions``); returns the answer's JSON with its
    ``status`` added (200 scored, 422 rejected with messages, 4xx refused)."""
    path = Path(path)
    with _client() as client, path.open("rb") as f:
        response = client.post(
            f"{url}/api/submissions",
            headers=_auth(token),
            files={"file": (path.name, f, "text/csv")},
            data={"team": team} if team else None,
        )
    return {"status": response.status_code} | response.json()


def register_service(url: str, token: str, service_url: str, service_token: str | None = None):
    """Have the server score the team's running service now (``POST /api/service``)."""
    with _client(SERVICE_TIMEOUT_S) as client:
        response = client.post(
            f"{url}/api/service",
            headers=_auth(token),
            json={"url": service_url, "token": service_token},
        )
    return {"status": response.status_code} | response.json()


def fetch_history(url: str, token: str) -> dict:
    with _client() as client:
        response = client.get(f"{url}/api/submissions", headers=_auth(token))
    return {"status": response.status_code} | response.json()


def fetch_board(url: str, token: str | None = None, final: bool = False) -> dict:
    with _client() as client:
        response = client.get(
            f"{url}/api/leaderboard", headers=_auth(token), params={"final": final} if final else {}
        )
    return {"status": response.status_code} | response.json()


def reveal(url: str, admin_token: str) -> dict:
    with _client() as client:
        response = client.post(f"{url}/api/admin/reveal", headers=_auth(admin_token))
    return {"status": response.status_code} | response.json()


def format_board(board: dict) -> str:
    """A board's JSON (``leaderboard``) as a text table."""

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    head = f"{'rank':>4}  {'team':<24}  {'score':>6}  {'public':>6}  {'kind':<7}  {'p95 ms':>6}"
    head += f"  {'bonus':>5}  {'subs':>4}"
    lines = [f"{'final' if board['final'] else 'live'} board: {board['rule']}", head]
    for r in board["rows"]:
        lines.append(
            f"{fmt(r['rank'], 'd'):>4}  {r['team'][:24]:<24}  {fmt(r['score'], '.3f'):>6}  "
            f"{fmt(r['public'], '.3f'):>6}  {r['kind'] or '-':<7}  {fmt(r['p95_ms'], '.1f'):>6}  "
            f"{fmt(r['bonus'], '+.2f'):>5}  {r['submissions']:>4}"
        )
    return "\n".join(lines)


class SubmissionServer(ChildProcess):
    """``python -m course_lib hackathon serve`` on a free loopback port, as a child process that
    ends with its parent. ``tokens`` and ``admin_token`` are read from the data folder once the
    server answers."""

    def __init__(
        self,
        teams: str | os.PathLike,
        answers: str | os.PathLike,
        data: str | os.PathLike,
        limit_per_hour: int | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
        startup_timeout: float = 120.0,
        log_path: str | os.PathLike | None = None,
    ):
        self.data = Path(data)
        self.port = port or free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.tokens: dict[str, str] = {}
        self.admin_token = ""
        argv = [sys.executable, "-m", "course_lib", "hackathon", "serve"]
        argv += ["--teams", str(teams), "--answers", str(answers), "--data", str(self.data)]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--exit-with-parent"]
        if limit_per_hour is not None:
            argv += ["--limit-per-hour", str(limit_per_hour)]
        super().__init__(argv + list(extra_args or []), log_path)

    def start(self) -> SubmissionServer:
        super().start()
        try:
            self.wait_for_http(self.url + "/api/health", self.startup_timeout, "the server")
        except BaseException:
            self.stop()
            raise
        self.tokens = read_tokens(self.data)
        self.admin_token = (self.data / ADMIN_FILE).read_text().strip()
        return self
