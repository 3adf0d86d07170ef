"""What ``POST /predict`` accepts: the limits, the checks, the errors, and their JSON Schemas.

The checks here and the schemas in ``/openapi.json`` are written side by side, from the same
constants, so that the published contract says exactly what the server enforces: a request that
the schema accepts is served, one that it refuses gets a 4xx ``{"error", "message"}`` body.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from ..runtime.exercises import Case, check_exercise

TOKEN_ENV = "COURSE_API_TOKEN"
MAX_TEXTS = 64  # texts per request
MAX_TEXT_CHARS = 1000  # characters (Unicode code points) per text; a tweet has at most 280

# The body limit follows from the two above: the longest body a schema-valid request can need is
# 64 texts of 1,000 characters, each character written as a JSON escape of at most 12 bytes
# ("\ud83d\ude00" for one emoji, as json.dumps writes it by default), plus quotes and commas:
# 64 * (1000 * 12 + 3) + 11 = 768,203 bytes. 1 MiB leaves room, and stops a client from sending
# megabytes of junk. A body with megabytes of blank space between JSON tokens is refused.
MAX_BODY_BYTES = 1024 * 1024

# A text must hold at least one character that is not white space. The schema publishes this
# very pattern, and the server checks it with the same regular expression.
NON_BLANK_PATTERN = r"\S"
_NON_BLANK = re.compile(NON_BLANK_PATTERN)

# Every error the service answers, by status: (status, code, when). The OpenAPI contract lists them.
ERRORS = [
    (400, "invalid_utf8", "the body is not valid UTF-8"),
    (400, "invalid_json", "the body is not JSON, or is nested too deeply"),
    (400, "bad_request", "the Content-Length header is not a number"),
    (401, "missing_token", "the server has a token and the request has no 'Bearer <token>'"),
    (403, "wrong_token", "the token does not match"),
    (413, "body_too_large", "the body is over the byte limit"),
    (415, "unsupported_media_type", "the Content-Type is not application/json"),
    (422, "invalid_request", "wrong JSON types, or the field 'text' is missing"),
    (422, "unknown_field", "a field other than 'text'"),
    (422, "empty_text", "a text is empty or only white space"),
    (422, "empty_list", "'text' is an empty list"),
    (422, "too_many_texts", "more texts than the per-request limit"),
    (422, "text_too_long", "a text over the character limit"),
    (422, "invalid_text", "a text with a lone surrogate (\\ud800-\\udfff)"),
    (500, "internal_error", "a bug in the server; the request may be retried"),
]


class ApiError(Exception):
    """A client error, answered as ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str) -> dict:
    """The JSON body of every error answer: ``{"error": code, "message": text}``."""
    return {"error": code, "message": message}


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if isinstance(value, int | float) else "value")


def validate_texts(
    payload: Any, max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS
) -> list[str]:
    """Check a decoded JSON body and return its texts as a list; raise ``ApiError`` (422) if wrong.

    Accepted: an object with exactly one field, ``text``, holding a non-blank string or a
    non-empty list of at most ``max_texts`` such strings, each at most ``max_chars`` characters.
    """
    if not isinstance(payload, dict):
        raise ApiError(
            422,
            "invalid_request",
            f'the body must be a JSON object like {{"text": "..."}}, '
            f"got a JSON {_json_type(payload)}",
        )
    unknown = sorted(set(payload) - {"text"})
    if unknown:
        raise ApiError(
            422, "unknown_field", f"unknown field(s) {unknown}; the only field is 'text'"
        )
    if "text" not in payload:
        raise ApiError(
            422, "invalid_request", "missing field 'text' (a string or a list of strings)"
        )
    text = payload["text"]
    if isinstance(text, str):
        texts, where = [text], lambda i: "text"
    elif isinstance(text, list):
        if not text:
            raise ApiError(422, "empty_list", "'text' is an empty list; send at least one text")
        if len(text) > max_texts:
            raise ApiError(
                422,
                "too_many_texts",
                f"'text' holds {len(text)} texts; the limit is {max_texts} per request",
            )
        texts, where = text, lambda i: f"text[{i}]"
    else:
        raise ApiError(
            422,
            "invalid_request",
            f"'text' must be a string or a list of strings, got a JSON {_json_type(text)}",
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ApiError(
                422, "invalid_request", f"{where(i)} must be a string, got a JSON {_json_type(t)}"
            )
        if not _NON_BLANK.search(t):
            raise ApiError(422, "empty_text", f"{where(i)} is empty or only whitespace")
        if len(t) > max_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"{where(i)} has {len(t)} characters; the limit is {max_chars} "
                f"(longer texts are rejected, not truncated)",
            )
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                422,
                "invalid_text",
                f"{where(i)} contains a lone surrogate (\\ud800-\\udfff), which is not a character",
            ) from None
    return list(texts)


def check_request_texts(fn, verbose: bool = True):
    """Checker for the lesson 07 exercise ``fn(payload) -> list of texts``, which must refuse a
    bad body with ``ApiError(422, code, message)`` as ``validate_texts`` does (the code must be
    the server's; the message is free). Returns the function to use from here on."""

    def outcome(f):
        def run(payload):
            try:
                texts = f(payload)
            except ApiError as err:
                return f"refused: {err.status} {err.code}"
            if not isinstance(texts, list):
                return f"a value of type {type(texts).__name__} (expected a list of texts)"
            if len(texts) > 4:
                return f"accepted: a list of {len(texts)} texts"
            shown = [
                t if not isinstance(t, str) or len(t) <= 30 else f"{t[:8]}... ({len(t)} chars)"
                for t in texts
            ]
            return f"accepted: {shown}"

        return run

    refuse = "refuse it with raise ApiError(422, code, message), the code from the table above."
    cases = [
        Case(
            '{"text": "great crew"}',
            ({"text": "great crew"},),
            hint="a single string is one text: return a list holding it.",
        ),
        Case('{"text": ["great crew", "lost my bag"]}', ({"text": ["great crew", "lost my bag"]},)),
        Case(
            f'{{"text": "{"a" * 4}..."}} exactly at the limit of {MAX_TEXT_CHARS} characters',
            ({"text": "a" * MAX_TEXT_CHARS},),
            hint="the limit itself is allowed; only longer texts are refused.",
        ),
        Case('["hello"] (not an object)', (["hello"],), hint="the body must be a dict; " + refuse),
        Case("{} (no field)", ({},), hint="a body without 'text' is an invalid_request."),
        Case(
            '{"text": "hi", "lang": "en"}',
            ({"text": "hi", "lang": "en"},),
            hint="any field other than 'text' is an unknown_field.",
        ),
        Case('{"text": 42}', ({"text": 42},), hint="'text' must be a str or a list; " + refuse),
        Case(
            '{"text": ["ok", 3]}',
            ({"text": ["ok", 3]},),
            hint="every item of the list must be a str.",
        ),
        Case('{"text": "   "}', ({"text": "   "},), hint="a blank text is an empty_text."),
        Case('{"text": []}', ({"text": []},), hint="an empty list is an empty_list."),
        Case(
            f'{{"text": [...{MAX_TEXTS + 1} texts]}}',
            ({"text": ["hi"] * (MAX_TEXTS + 1)},),
            hint=f"more than {MAX_TEXTS} texts is too_many_texts.",
        ),
        Case(
            f'{{"text": "..."}} of {MAX_TEXT_CHARS + 1} characters',
            ({"text": "a" * (MAX_TEXT_CHARS + 1)},),
            hint="over the character limit is text_too_long.",
        ),
        Case(
            '{"text": "\\ud800"} (a lone surrogate)',
            ({"text": "\ud800"},),
            hint="try text.encode('utf-8'): it raises UnicodeEncodeError; that is invalid_text.",
        ),
    ]
    result = check_exercise(
        "validate a request body", outcome(fn), outcome(validate_texts), cases, verbose=verbose
    )
    return fn if result.passed else validate_texts


def decode_json_body(body: bytes) -> Any:
    """UTF-8 bytes -> Python value; ``ApiError`` 400 for bytes that are not UTF-8 or not JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_utf8",
            f"the body is not valid UTF-8 (byte {exc.start}: {body[exc.start : exc.start + 1]!r})",
        ) from None
    if not text.strip():
        raise ApiError(400, "invalid_json", 'the body is empty; expected JSON like {"text": "..."}')
    try:
        return json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise ``ApiError`` 401/403 unless ``authorization`` is ``Bearer <expected>``.

    A no-op when the server has no token.
    """
    if not expected:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization:
        raise ApiError(
            401,
            "missing_token",
            "this server needs a token: send 'Authorization: Bearer <token>'",
            challenge,
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "missing_token", "the Authorization header must read 'Bearer <token>'", challenge
        )
    # Compare bytes in constant time; headers arrive latin-1 decoded, so this cannot fail.
    given_bytes = given.strip().encode("latin-1", "replace")
    if not hmac.compare_digest(given_bytes, expected.encode("utf-8")):
        raise ApiError(403, "wrong_token", "the token does not match", challenge)


# --------------------------------------------------------------------------- JSON Schemas


def text_schema(max_chars: int = MAX_TEXT_CHARS) -> dict:
    """One text: 1 to ``max_chars`` characters, at least one of them not white space."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_chars,
        "pattern": NON_BLANK_PATTERN,
        "description": f"1 to {max_chars} characters, not only white space",
    }


def predict_request_schema(max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS) -> dict:
    """``{"text": one text | [1 to max_texts texts]}``, no other field."""
    one = text_schema(max_chars)
    return {
        "title": "PredictRequest",
        "type": "object",
        "properties": {
            "text": {
                "oneOf": [
                    one,
                    {"type": "array", "items": one, "minItems": 1, "maxItems": max_texts},
                ],
                "description": f"one text, or a list of 1 to {max_texts} texts",
            }
        },
        "required": ["text"],
        "additionalProperties": False,
        "examples": [{"text": "what a great flight!"}, {"text": ["great crew", "lost my bag"]}],
    }


def predict_response_schema(labels: list[str], max_tokens: int) -> dict:
    """One prediction per text, in order, plus the model that made them."""
    scores = {
        "type": "object",
        "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in labels},
        "required": list(labels),
        "additionalProperties": False,
        "description": "probability of each label; they sum to 1 (rounded to 6 decimals)",
    }
    prediction = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "scores": scores,
            "truncated": {
                "type": "boolean",
                "description": f"the text was longer than {max_tokens} tokens and was cut",
            },
        },
        "required": ["label", "scores", "truncated"],
        "additionalProperties": False,
    }
    return {
        "title": "PredictResponse",
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": prediction, "minItems": 1},
            "model": {"type": "string"},
            "backend": {"type": "string"},
        },
        "required": ["predictions", "model", "backend"],
        "additionalProperties": False,
    }


def error_schema(codes: list[str] | None = None) -> dict:
    """``{"error": code, "message": text}``; ``codes`` lists the codes one status can carry."""
    code = {"type": "string"} | ({"enum": sorted(set(codes))} if codes else {})
    return {
        "title": "Error",
        "type": "object",
        "properties": {"error": code, "message": {"type": "string", "minLength": 1}},
        "required": ["error", "message"],
        "additionalProperties": False,
    }
