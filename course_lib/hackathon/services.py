"""Scoring a team's running service: send each challenge tweet to ``POST /predict``, time it.

The request is the course service's API (``course_lib.serving``): ``{"text": ["one tweet"]}``;
the answer must be ``{"predictions": [{"label": "negative" | "neutral" | "positive", ...}]}``.
One tweet per request, one request at a time, so the time measured is the latency one user sees
(network included: score every team over the same network). The first request is a warm-up and
is not timed.

A service that is down, slow or answers garbage never stops the scoring: each failure is
counted, the tweet counts as wrong, and after ``max_failures`` failures in a row (or when the
time budget is spent) the remaining tweets count as wrong and the scorer moves on.

The submission server calls a team's service only at the host the instructor registered for
that team (``check_registered``), and the scorer never follows a redirect (a service could
otherwise send it anywhere on the venue's network).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from ..data import LABELS
from ..serving.processes import free_port
from .submissions import NO_ANSWER

TIMEOUT_S = 2.0  # per request; a tweet that takes longer counts as wrong
BUDGET_S = 120.0  # per service, all requests together
MAX_FAILURES = 3  # in a row, before the scorer gives up on a service
MAX_ANSWER_BYTES = 64 * 1024
MIN_TIMED = 20  # fewer answered requests than this: no p95 reported


@dataclass
class ServiceResult:
    """Answers of one service: ``predictions`` {id: label}, ``latencies_ms`` of the answered
    requests, and ``problems`` in words. ``rejected`` means nothing usable came back."""

    team: str
    url: str
    predictions: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rejected: bool = False

    @property
    def p95_ms(self) -> float | None:
        """95th percentile of the request times, or None with fewer than ``MIN_TIMED`` answers."""
        if len(self.latencies_ms) < MIN_TIMED:
            return None
        return float(np.percentile(self.latencies_ms, 95))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # urllib then raises HTTPError for the 3xx: "error (HTTP 307)"


# No proxy from the environment (the scorer talks to the teams' machines directly), no redirect.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class NotRegistered(ValueError):
    """A service URL outside the addresses the instructor registered (nothing was sent)."""


def check_registered(url: str, host: str | None, team: str = "this team") -> str:
    """``url`` when it is ``http(s)://HOST[:PORT][/path]`` with the registered ``host``;
    raises ``NotRegistered`` (before any connection) otherwise."""
    if host is None:
        raise NotRegistered(
            f"no service address is registered for {team}: the instructor adds it to the teams "
            f"file as TEAM,HOST and restarts the server"
        )
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotRegistered(f"{url[:100]!r} is not an http:// or https:// address")
    if parts.username or parts.password:
        raise NotRegistered("the service address must not carry a user name or password")
    if parts.hostname.lower() != host.lower():
        raise NotRegistered(
            f"the host {parts.hostname!r} is not the address registered for {team} "
            f"({host}): use http://{host}:PORT, or ask the instructor to change it"
        )
    return url.strip()


def predict_url(url: str) -> str:
    """``http://host:port`` or ``.../predict`` -> the ``/predict`` address."""
    url = url.rstrip("/")
    return url if url.endswith("/predict") else url + "/predict"


def ask_once(url: str, text: str, timeout: float, token: str | None = None) -> str:
    """The label a service gives ``text``. Raises ``ServiceFailure`` with a reason in words.
    ``token``: sent as ``Authorization: Bearer`` (lesson 07's ``COURSE_API_TOKEN``)."""
    body = json.dumps({"text": [text]}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise ServiceFailure("error", f"answered HTTP {err.code}") from None
    except TimeoutError:
        raise ServiceFailure("slow", f"no answer within {timeout:g} s") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise ServiceFailure("slow", f"no answer within {timeout:g} s") from None
        raise ServiceFailure("down", f"cannot connect ({err.reason})") from None
    except (ConnectionError, OSError) as err:
        raise ServiceFailure("down", f"connection failed ({err})") from None
    if len(answer) > MAX_ANSWER_BYTES:
        raise ServiceFailure("garbage", f"answer over {MAX_ANSWER_BYTES:,} bytes")
    try:
        label = json.loads(answer.decode("utf-8"))["predictions"][0]["label"]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        raise ServiceFailure(
            "garbage",
            'answer is not {"predictions": [{"label": ...}]}: ' + repr(answer[:60])[2:-1],
        ) from None
    if not isinstance(label, str) or label.strip().lower() not in LABELS:
        raise ServiceFailure("garbage", f"label {str(label)[:40]!r} is not one of {LABELS}")
    return label.strip().lower()


class ServiceFailure(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


def query_service(
    team: str,
    url: str,
    ids: list[str],
    texts: list[str],
    timeout: float = TIMEOUT_S,
    budget_s: float = BUDGET_S,
    max_failures: int = MAX_FAILURES,
    progress: bool = False,
    token: str | None = None,
) -> ServiceResult:
    """Send every text to the service at ``url``; never raises for a misbehaving service."""
    from tqdm.auto import tqdm

    result = ServiceResult(team, url)
    target = predict_url(url)
    failures: Counter = Counter()
    examples: dict[str, str] = {}
    in_a_row, start = 0, time.perf_counter()
    try:
        ask_once(target, texts[0], timeout, token)  # warm-up, not timed
    except ServiceFailure as err:
        failures[err.kind] += 1
        examples.setdefault(err.kind, err.reason)
        in_a_row = 1
    stopped = None
    for i, (rid, text) in enumerate(
        tqdm(list(zip(ids, texts)), desc=f"service {team}", disable=not progress, leave=False)
    ):
        if in_a_row >= max_failures:
            stopped = f"gave up after {max_failures} failures in a row"
        elif time.perf_counter() - start > budget_s:
            stopped = f"gave up when the time budget of {budget_s:g} s was spent"
        if stopped:
            result.problems.append(f"{stopped}: {len(ids) - i} tweets not asked (counted as wrong)")
            break
        t0 = time.perf_counter()
        try:
            result.predictions[rid] = ask_once(target, text, timeout, token)
        except ServiceFailure as err:
            result.predictions[rid] = NO_ANSWER
            failures[err.kind] += 1
            examples.setdefault(err.kind, err.reason)
            in_a_row += 1
            continue
        result.latencies_ms.append(1000 * (time.perf_counter() - t0))
        in_a_row = 0
    words = {"down": "down", "slow": "too slow", "garbage": "garbage answer", "error": "error"}
    for kind, n in failures.most_common():
        result.problems.insert(0, f"{words[kind]} ({n}x), e.g. {examples[kind]} at {target}")
    if not result.latencies_ms:
        result.rejected = True
    return result


# --------------------------------------------------------------------------------------------
# A tiny stand-in service on 127.0.0.1, for the notebook's demo and the tests
# --------------------------------------------------------------------------------------------
Responder = Callable[[bytes], tuple[int, bytes]]


def labels_responder(predict: Callable[[list[str]], list[str]]) -> Responder:
    """Answer like the course service, with labels from ``predict(texts) -> labels``."""

    def respond(body: bytes) -> tuple[int, bytes]:
        try:
            texts = json.loads(body)["text"]
            texts = [texts] if isinstance(texts, str) else list(texts)
        except (ValueError, KeyError, TypeError):
            return 422, b'{"error": "invalid_request"}'
        answer = {"predictions": [{"label": label} for label in predict(texts)]}
        return 200, json.dumps(answer).encode()

    return respond


class LocalService:
    """A ``/predict`` endpoint on 127.0.0.1 (a free port), run in a thread::

        with LocalService(labels_responder(my_predict)) as url:
            ...

    ``respond(body) -> (status, bytes[, headers])`` decides each answer, so tests can make it
    misbehave.
    ``token``: like lesson 07's ``COURSE_API_TOKEN``, requests without ``Authorization: Bearer
    <token>`` get 401. ``release`` is an Event set on exit: a responder that simulates a hung
    model waits on it."""

    def __init__(self, respond: Responder, token: str | None = None):
        self.respond = respond
        self.token = token
        self.release = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if service.token and self.headers.get("Authorization") != f"Bearer {service.token}":
                    status, answer, extra = 401, b'{"error": "missing_token"}', {}
                else:  # (status, body) or (status, body, extra headers)
                    status, answer, extra = (*service.respond(body), {})[:3]
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scorer had given up on this request

            def log_message(self, *args):  # keep the notebook and test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval makes shutdown quick (the default waits up to 0.5 s).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def unused_local_url() -> str:
    """An address on 127.0.0.1 where nothing listens (a service that is down)."""
    return f"http://127.0.0.1:{free_port('127.0.0.1')}"
