"""What ``POST /predict`` accepts: the limits, the checks, the errors, and their JSON Schemas.

The rules of a request body are one Pydantic model, ``request_model``: the server validates with
it, ``validate_texts`` (lesson 07) answers with it in the service's error codes, and its
``model_json_schema()`` is the request schema of ``/openapi.json``. So the published contract
says exactly what the server enforces: a request that the schema accepts is served, one that it
refuses gets a 4xx ``{"error", "message"}`` body. The answers' schemas are written out below.
"""

import json
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
)

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

# A text must hold at least one character that is not white space (a regular expression that
# must match somewhere in it): the request model checks it, and its schema publishes it.
NON_BLANK_PATTERN = r"\S"

# Every error the service answers, by status: (status, code, when). The OpenAPI contract lists them.
ERRORS = [
    (400, "invalid_utf8", "the body is not valid UTF-8"),
    (400, "invalid_json", "the body is not JSON, or is nested too deeply"),
    (400, "bad_request", "the Content-Length header is not a number"),
    (401, "missing_token", "the server has a token and the request has no 'Bearer <token>'"),
    (401, "invalid_token", 'the token does not match (RFC 6750: error="invalid_token")'),
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


def _text_shape(value: Any) -> str | None:
    """Which branch of ``text`` a value is for: one text, a list of texts, or neither."""
    return "one" if isinstance(value, str) else "many" if isinstance(value, list) else None


@lru_cache(maxsize=32)
def request_model(max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS) -> type[BaseModel]:
    """The Pydantic model of a ``POST /predict`` body, for these limits (one class per pair).

    ``{"text": one text | [1 to max_texts texts]}``, no other field. Strict: a number is not a
    text. Python's ``re`` checks the pattern, as the JSON Schema validators of the fuzzer and of
    ``ServiceClient`` do (Rust's ``\\s``, Pydantic's default, differs on e.g. ``\\x1c``).
    """
    one = Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_chars, pattern=NON_BLANK_PATTERN),
        Field(description=f"1 to {max_chars} characters, not only white space"),
    ]
    many = Annotated[list[one], Field(min_length=1, max_length=max_texts)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            strict=True,
            regex_engine="python-re",
            json_schema_extra={
                "examples": [
                    {"text": "what a great flight!"},
                    {"text": ["great crew", "lost my bag"]},
                ]
            },
        )
        # A callable discriminator: the schema says oneOf, and an error names the branch
        # the value was meant for (a list's items, not also "is not a string").
        text: Annotated[
            Annotated[one, Tag("one")] | Annotated[many, Tag("many")],
            Discriminator(_text_shape),
            Field(description=f"one text, or a list of 1 to {max_texts} texts"),
        ]

    return PredictRequest


# Pydantic's error types -> (the service's code, its message). Fields: ``where`` (``text`` or
# ``text[i]``), ``type`` (the JSON type of the value), ``n`` (its length), ``limit``, ``unknown``.
_TOO_LONG = (
    "{where} has {n} characters; the limit is {limit} (longer texts are rejected, not truncated)"
)
_PYDANTIC_ERRORS = {
    "model_type": (
        "invalid_request",
        'the body must be a JSON object like {{"text": "..."}}, got a JSON {type}',
    ),
    "extra_forbidden": ("unknown_field", "unknown field(s) {unknown}; the only field is 'text'"),
    "missing": ("invalid_request", "missing field 'text' (a string or a list of strings)"),
    "union_tag_not_found": (
        "invalid_request",
        "'text' must be a string or a list of strings, got a JSON {type}",
    ),
    "too_short": ("empty_list", "'text' is an empty list; send at least one text"),
    "too_long": ("too_many_texts", "'text' holds {n} texts; the limit is {limit} per request"),
    "string_type": ("invalid_request", "{where} must be a string, got a JSON {type}"),
    "string_too_short": ("empty_text", "{where} is empty or only whitespace"),
    "string_pattern_mismatch": ("empty_text", "{where} is empty or only whitespace"),
    "string_too_long": ("text_too_long", _TOO_LONG),
    "string_unicode": (
        "invalid_text",
        "{where} contains a lone surrogate (\\ud800-\\udfff), which is not a character",
    ),
}


def _first_error(errors: list[dict]) -> dict:
    """The error to report: the body before a field, the list before its items, the first item
    first, and an unknown field before a missing one."""

    def rank(error: dict) -> tuple:
        loc = error["loc"]
        index = loc[2] if len(loc) > 2 and isinstance(loc[2], int) else -1
        return len(loc), index, error["type"] != "extra_forbidden"

    return min(errors, key=rank)


def api_error_from(exc: ValidationError) -> ApiError:
    """A Pydantic ``ValidationError`` of ``request_model`` as the service's 422 ``ApiError``."""
    errors = exc.errors()
    error = _first_error(errors)
    kind, loc, value = error["type"], error["loc"], error["input"]
    if kind not in _PYDANTIC_ERRORS:  # a rule added to the model without a code: say what broke
        return ApiError(422, "invalid_request", f"{'.'.join(map(str, loc))}: {error['msg']}")
    code, template = _PYDANTIC_ERRORS[kind]
    message = template.format(
        where="text" if len(loc) < 3 else f"text[{loc[2]}]",
        type=_json_type(value),
        n=len(value) if isinstance(value, str | list) else 0,
        limit=(error.get("ctx") or {}).get("max_length"),
        unknown=sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"),
    )
    return ApiError(422, code, message)


def validate_texts(
    payload: Any, max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS
) -> list[str]:
    """Check a decoded JSON body and return its texts as a list; raise ``ApiError`` (422) if wrong.

    Accepted: an object with exactly one field, ``text``, holding a non-blank string or a
    non-empty list of at most ``max_texts`` such strings, each at most ``max_chars`` characters.
    The rules are ``request_model``'s; this turns its answer into the service's.
    """
    try:
        text = request_model(max_texts, max_chars).model_validate(payload).text
    except ValidationError as exc:
        raise api_error_from(exc) from None
    return [text] if isinstance(text, str) else list(text)


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


# --------------------------------------------------------------------------- JSON Schemas


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
