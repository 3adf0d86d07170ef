"""course_lib.serving.validation: the request checks, and the schema that says the same."""

import json

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    "wrong token": (403, "wrong_token"),
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


def test_token_check():
    V.check_token(None, None)  # no token on the server: anything goes
    for header, status in [
        (None, 401),
        ("Basic abc", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("secret", 401),
        ("Bearer secretx", 403),
    ]:
        with pytest.raises(V.ApiError) as err:
            V.check_token("secret", header)
        assert err.value.status == status and err.value.headers == {"WWW-Authenticate": "Bearer"}
    V.check_token("secret", "bearer secret")


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
    schema = V.predict_request_schema(max_texts=3, max_chars=8)
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
    schema = jsonschema.Draft202012Validator(V.predict_request_schema())
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


def test_check_request_texts_accepts_the_server_and_explains_mistakes(capsys):
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
