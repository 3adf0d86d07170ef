"""The catalogue of bad requests the service must answer with a 4xx JSON error, and a client that
sends them to a running server (lesson 07 and the tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .validation import MAX_BODY_BYTES, MAX_TEXT_CHARS, MAX_TEXTS


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
        BadInput("wrong token", j({"text": "hello"}), 401, auth_json, needs_token=True),
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
