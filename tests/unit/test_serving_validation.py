"""course_lib.serving.validation and .auth: the request model, its checks in the service's error
codes, the schema that says the same, and the token."""

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.serving import auth as A
from course_lib.serving import bad_requests as C
from course_lib.serving import validation as V

# What each bad input must get, written out here rather than trusted from the library's list.
EXPECTED = {
    "non-JSON body": (400, "invalid_json"),
    "invalid UTF-8": (400, "invalid_utf8"),
    "JSON nested too deeply": (400, "invalid_json"),
    "wrong Content-Type": (415, "unsupported_media_type"),
    "wrong type: number": (422, "invalid_request"),
    "wrong type: list of numbers": (422, "invalid_request"),
    "wrong type: body is a list": (422, "invalid_request"),
    "missing field": (422, "invalid_request"),
    "unknown field": (422, "unknown_field"),
    "empty string": (422, "empty_text"),
    "blank string": (422, "empty_text"),
    "empty list": (422, "empty_list"),
    f"list over the limit ({V.MAX_TEXTS + 1} texts)": (422, "too_many_texts"),
    f"text over the limit ({V.MAX_TEXT_CHARS + 1} chars)": (422, "text_too_long"),
    "lone surrogate": (422, "invalid_text"),
    f"body over the limit (> {V.MAX_BODY_BYTES} bytes)": (413, "body_too_large"),
    "unknown path": (404, "not_found"),
    "wrong method": (405, "method_not_allowed"),
    "missing token": (401, "missing_token"),
    "wrong token": (401, "invalid_token"),
}


def test_the_bad_input_list_covers_the_issue():
    cases = {c.case: c for c in C.bad_inputs()}
    names = " | ".join(cases)
    for required in (
        "non-JSON",
        "wrong type",
        "empty string",
        "empty list",
        "list over the limit",
        "text over the limit",
        "body over the limit",
        "invalid UTF-8",
        "unknown field",
        "missing token",
        "wrong token",
    ):
        assert required in names, required
    assert set(cases) == set(EXPECTED)
    assert all(cases[name].expected_status == status for name, (status, _) in EXPECTED.items())


def test_every_error_code_of_the_catalogue_is_in_the_published_table():
    published = {(status, code) for status, code, _ in V.ERRORS}
    routing = {("404", "not_found"), ("405", "method_not_allowed")}  # not operations' answers
    for status, code in EXPECTED.values():
        assert (status, code) in published or (str(status), code) in routing, (status, code)


def test_token_check_answers_as_rfc_6750_says():
    """401 both ways; the challenge names invalid_token only when a token was sent."""
    A.check_token(None, None)  # no token on the server: anything goes
    for sent, code, challenge in [
        (None, "missing_token", "Bearer"),
        ("", "missing_token", "Bearer"),
        ("secretx", "invalid_token", 'Bearer error="invalid_token"'),
        ("secre", "invalid_token", 'Bearer error="invalid_token"'),
        ("\xff\xfe", "invalid_token", 'Bearer error="invalid_token"'),  # latin-1 header bytes
    ]:
        with pytest.raises(V.ApiError) as err:
            A.check_token("secret", sent)
        assert (err.value.status, err.value.code) == (401, code), sent
        assert err.value.headers == {"WWW-Authenticate": challenge}, sent
    A.check_token("secret", "secret")
    assert A.CHALLENGES == ["Bearer", 'Bearer error="invalid_token"']


def test_worst_case_valid_body_fits_under_the_body_limit():
    """A schema-valid request, JSON-encoded the default way (ASCII escapes), never gets 413."""
    emoji = "\U0001f600"  # 12 bytes as a JSON escape, one character for the schema
    body = json.dumps({"text": [emoji * V.MAX_TEXT_CHARS] * V.MAX_TEXTS}).encode()
    assert V.validate_texts(json.loads(body)) and len(body) <= V.MAX_BODY_BYTES, len(body)
    padded = json.dumps({"text": [emoji * V.MAX_TEXT_CHARS] * V.MAX_TEXTS}, indent=1).encode()
    assert len(padded) <= V.MAX_BODY_BYTES  # pretty-printed too


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
texts = st.text(max_size=12) | st.sampled_from([" ", "\t\n", "\u00a0", "\u2003x", "\x1c", "a"])
requests = st.one_of(
    json_values,
    st.fixed_dictionaries({"text": json_values}),
    st.fixed_dictionaries({"text": texts | st.lists(texts, max_size=5)}),
)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_the_request_schema_accepts_exactly_what_the_server_accepts(payload):
    """Small limits, so that the hypothesis strategies reach both sides of each one."""
    schema = V.request_model(max_texts=3, max_chars=8).model_json_schema()
    by_schema = jsonschema.Draft202012Validator(schema).is_valid(payload)
    try:
        accepted = V.validate_texts(payload, max_texts=3, max_chars=8)
    except V.ApiError as err:
        assert 400 <= err.status < 500 and err.code and err.message
        accepted = None
    else:
        assert isinstance(accepted, list) and 1 <= len(accepted) <= 3
    assert by_schema == (accepted is not None), (payload, by_schema, accepted)


def test_the_schema_and_the_checker_agree_at_the_real_limits():
    schema = jsonschema.Draft202012Validator(V.request_model().model_json_schema())
    n, c = V.MAX_TEXTS, V.MAX_TEXT_CHARS
    for payload, ok in [
        ({"text": ["a"] * n}, True),
        ({"text": ["a"] * (n + 1)}, False),
        ({"text": "b" * c}, True),
        ({"text": "b" * (c + 1)}, False),
        ({"text": " \u3000 "}, False),
        ({"text": "ok", "lang": "en"}, False),
    ]:
        assert schema.is_valid(payload) is ok, payload
        try:
            V.validate_texts(payload)
            assert ok, payload
        except V.ApiError:
            assert not ok, payload


def test_one_request_model_per_pair_of_limits():
    assert V.request_model(3, 8) is V.request_model(3, 8)
    assert V.request_model(3, 8) is not V.request_model(4, 8)
    text = V.request_model(3, 8).model_json_schema()["properties"]["text"]
    one, many = text["oneOf"]
    assert (one["maxLength"], many["maxItems"], many["items"]) == (8, 3, one)
    assert V.validate_texts({"text": ["a"] * 4}, max_texts=4, max_chars=8) == ["a"] * 4
    with pytest.raises(V.ApiError, match="the limit is 3 per request"):
        V.validate_texts({"text": ["a"] * 4}, max_texts=3, max_chars=8)


def test_every_pydantic_error_maps_to_a_published_code():
    published = {code for status, code, _ in V.ERRORS if status == 422}
    assert {code for code, _ in V._PYDANTIC_ERRORS.values()} == published


# The messages name the place and the limit (lesson 07 prints them). Each body breaks one rule,
# or two where the order matters (first the body, then the list, then its items in order).
MESSAGES = [
    (["hello"], 'the body must be a JSON object like {"text": "..."}, got a JSON array'),
    ({}, "missing field 'text' (a string or a list of strings)"),
    ({"lang": "en", "b": 1}, "unknown field(s) ['b', 'lang']; the only field is 'text'"),
    ({"text": None}, "'text' must be a string or a list of strings, got a JSON null"),
    ({"text": ["ok", 3, ""]}, "text[1] must be a string, got a JSON number"),
    ({"text": ["ok", " ", 3]}, "text[1] is empty or only whitespace"),
    ({"text": []}, "'text' is an empty list; send at least one text"),
    ({"text": ["hi", 5, "", "x"]}, "'text' holds 4 texts; the limit is 3 per request"),
    (
        {"text": "a" * 9},
        "text has 9 characters; the limit is 8 (longer texts are rejected, not truncated)",
    ),
    (
        {"text": ["a", "b\udc00"]},
        "text[1] contains a lone surrogate (\\ud800-\\udfff), which is not a character",
    ),
]


@pytest.mark.parametrize("payload, message", MESSAGES)
def test_refusals_say_what_is_wrong_and_where(payload, message):
    with pytest.raises(V.ApiError) as err:
        V.validate_texts(payload, max_texts=3, max_chars=8)
    assert err.value.status == 422 and err.value.message == message


def hand_written(payload, max_texts=V.MAX_TEXTS, max_chars=V.MAX_TEXT_CHARS):
    """A learner's solution of lesson 07's exercise, written without Pydantic."""
    if not isinstance(payload, dict):
        raise V.ApiError(422, "invalid_request", "not an object")
    if set(payload) - {"text"}:
        raise V.ApiError(422, "unknown_field", "only 'text'")
    if "text" not in payload:
        raise V.ApiError(422, "invalid_request", "no 'text'")
    texts = [payload["text"]] if isinstance(payload["text"], str) else payload["text"]
    if not isinstance(texts, list):
        raise V.ApiError(422, "invalid_request", "not a string or a list")
    if not texts:
        raise V.ApiError(422, "empty_list", "empty list")
    if len(texts) > max_texts:
        raise V.ApiError(422, "too_many_texts", "too many")
    for t in texts:
        if not isinstance(t, str):
            raise V.ApiError(422, "invalid_request", "not a string")
        if not t.strip():
            raise V.ApiError(422, "empty_text", "blank")
        if len(t) > max_chars:
            raise V.ApiError(422, "text_too_long", "too long")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise V.ApiError(422, "invalid_text", "lone surrogate") from None
    return list(texts)


def outcome(fn, payload, **limits):
    try:
        return fn(payload, **limits)
    except V.ApiError as err:
        return err.status, err.code


with_surrogates = texts | st.sampled_from(["\ud800", "ok\udfff"])


@settings(max_examples=200, deadline=None)
@given(
    json_values
    | st.fixed_dictionaries({"text": with_surrogates | st.lists(with_surrogates, max_size=5)})
    | st.fixed_dictionaries({"text": with_surrogates}, optional={"x": json_values})
)
def test_the_model_gives_the_codes_of_a_hand_written_solution(payload):
    """The same outcome, accepted or refused with which code, for any body each rule breaks."""
    limits = {"max_texts": 3, "max_chars": 8}
    assert outcome(V.validate_texts, payload, **limits) == outcome(hand_written, payload, **limits)


def test_check_request_texts_accepts_the_server_and_explains_mistakes(capsys):
    assert V.check_request_texts(hand_written) is hand_written
    assert "[correct]" in capsys.readouterr().out

    assert V.check_request_texts(V.validate_texts) is V.validate_texts
    assert "[correct]" in capsys.readouterr().out

    def unsolved(payload):
        raise NotImplementedError

    assert V.check_request_texts(unsolved) is V.validate_texts
    assert "[skipped]" in capsys.readouterr().out

    def forgets_blank_texts_and_unknown_fields(payload):
        if not isinstance(payload, dict) or "text" not in payload:
            raise V.ApiError(422, "invalid_request", "no")
        return V.validate_texts({"text": payload["text"] if payload["text"] != "   " else "x"})

    assert V.check_request_texts(forgets_blank_texts_and_unknown_fields) is V.validate_texts
    out = capsys.readouterr().out
    assert "[not yet]" in out and "unknown_field" in out and "empty_text" in out

    def right_rules_wrong_code(payload):
        try:
            return V.validate_texts(payload)
        except V.ApiError as err:
            raise V.ApiError(400, err.code, err.message) from None

    assert V.check_request_texts(right_rules_wrong_code) is V.validate_texts
    assert "refused: 400" in capsys.readouterr().out

    def returns_a_tuple(payload):
        return tuple(V.validate_texts(payload))

    V.check_request_texts(returns_a_tuple)
    assert "expected a list of texts" in capsys.readouterr().out
