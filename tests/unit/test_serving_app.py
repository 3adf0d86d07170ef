"""course_lib.serving app and predictor, in-process (Starlette's TestClient, no subprocess).

Every bad input gets a 4xx JSON error and the server keeps serving; the predictions match the
model; the token limit comes from the model folder. The model is a tiny random BERT classifier
(built in a second), never the real fine-tuned one.
"""

import asyncio
import json
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from test_serving_validation import EXPECTED, json_values
from tiny_models import artifacts_env, tiny_served_model

from course_lib import serving as S
from course_lib.settings import MAX_TOKENS

TOKEN = "test-token-3f9c2a"
LABELS = ["negative", "neutral", "positive"]
CASES = {c.case: c for c in S.bad_inputs()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with artifacts_env():
        yield tiny_served_model(tmp_path_factory.mktemp("serving-app"))


@pytest.fixture(scope="module")
def predictor(tiny):
    return S.load_predictor(tiny, "onnx", threads=1)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(S.create_app(predictor), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def token_client(predictor):
    with TestClient(S.create_app(predictor, token=TOKEN), raise_server_exceptions=False) as c:
        yield c


def assert_still_serving(client, headers=None):
    assert client.get("/health").status_code == 200
    r = client.post("/predict", json={"text": "still there?"}, headers=headers or {})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] in LABELS


def assert_json_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"], body


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bad_input_gets_4xx_json_and_the_server_keeps_serving(name, client, token_client):
    case = CASES[name]
    status, code = EXPECTED[name]
    c = token_client if case.needs_token else client
    r = c.request(case.method, case.path, content=case.body, headers=case.headers)
    assert_json_error(r, status, code)
    assert_still_serving(client)
    assert_still_serving(token_client, {"Authorization": f"Bearer {TOKEN}"})


def test_body_over_the_limit_without_content_length_is_refused(client):
    chunk = b'{"text": "' + b"x" * 10_000
    r = client.post(
        "/predict",
        content=(chunk for _ in range(S.MAX_BODY_BYTES // 10_000 + 2)),
        headers={"Content-Type": "application/json"},
    )
    assert_json_error(r, 413, "body_too_large")
    assert_still_serving(client)


def test_token_rules(token_client):
    good = {"Authorization": f"Bearer {TOKEN}"}
    # RFC 6750 section 3.1: no bearer token -> the bare challenge; a wrong one -> invalid_token
    r = token_client.post("/predict", json={"text": "hi"})
    assert_json_error(r, 401, "missing_token")
    assert r.headers["www-authenticate"] == "Bearer"
    for header in ("Basic abc", "Bearer", "Bearer ", TOKEN):
        r = token_client.post("/predict", json={"text": "hi"}, headers={"Authorization": header})
        assert_json_error(r, 401, "missing_token")
        assert r.headers["www-authenticate"] == "Bearer", header
    for header in (b"Bearer \xff\xfe-not-ascii", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"):
        r = token_client.post("/predict", json={"text": "hi"}, headers={"Authorization": header})
        assert_json_error(r, 401, "invalid_token")
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"', header
    for header in (f"bearer {TOKEN}", f"Bearer  {TOKEN} "):
        r = token_client.post("/predict", json={"text": "hi"}, headers={"Authorization": header})
        assert r.status_code == 200, header
    # the token is checked before the body: a bad body without a token is a 401, not a 422
    r = token_client.post("/predict", json={"txt": "hi"}, headers={"Authorization": "Bearer x"})
    assert_json_error(r, 401, "invalid_token")
    # the page, health, model info and docs stay public: the demo page has its own token field
    for path in ("/", "/health", "/model", "/docs", "/openapi.json"):
        assert token_client.get(path).status_code == 200, path
    assert token_client.get("/model").json()["token_required"] is True
    assert_still_serving(token_client, good)


def test_predict_one_text_or_a_list(client, predictor):
    texts = ["what a great flight", "they lost my bag", "ok"]
    r = client.post("/predict", json={"text": texts})
    assert r.status_code == 200
    body = r.json()
    assert body["backend"] == "onnx" and body["model"] == "tiny-model"
    preds = body["predictions"]
    assert len(preds) == 3
    expected = predictor.predict_proba(texts)
    for p, row in zip(preds, expected):
        assert list(p["scores"]) == LABELS
        np.testing.assert_allclose([p["scores"][k] for k in LABELS], row, atol=1e-5)
        assert p["label"] == LABELS[int(np.argmax(row))] and p["truncated"] is False
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    single = client.post("/predict", json={"text": texts[1]}).json()["predictions"]
    # int8 activations are quantised per batch: a text's scores move a little with its batch-mates
    assert len(single) == 1 and single[0]["scores"] == pytest.approx(preds[1]["scores"], abs=2e-3)


def test_long_texts_within_the_character_limit_are_truncated_and_flagged(client):
    long_text = "bad " * 240  # 960 characters, 242 tokens
    assert len(long_text) <= S.MAX_TEXT_CHARS
    p = client.post("/predict", json={"text": [long_text, "short"]}).json()["predictions"]
    assert p[0]["truncated"] is True and p[1]["truncated"] is False


def test_the_token_limit_is_the_one_the_model_was_trained_with(tiny, tmp_path):
    assert S.trained_max_tokens(tiny) == MAX_TOKENS  # no training_summary.json: the default
    (tmp_path / "training_summary.json").write_text(json.dumps({"config": {"max_length": 16}}))
    assert S.trained_max_tokens(tmp_path) == 16
    (tmp_path / "training_summary.json").write_text(json.dumps({"config": {"max_length": "x"}}))
    with pytest.raises(ValueError, match="max_length"):
        S.trained_max_tokens(tmp_path)


def test_a_model_trained_at_16_tokens_is_served_cut_at_16(tiny, tmp_path):
    import shutil

    folder = tmp_path / "short-model"
    shutil.copytree(tiny, folder)
    (folder / "training_summary.json").write_text(json.dumps({"config": {"max_length": 16}}))
    short = S.load_predictor(folder, "torch")
    full = S.load_predictor(tiny, "torch")
    text = "the flight was late and the crew was rude and the food was cold " * 2  # ~28 tokens
    assert short.max_tokens == 16 and short.predict([text])[0]["truncated"] is True
    assert full.predict([text])[0]["truncated"] is False
    # cut at 16 tokens, the text scores like its first 14 word pieces plus [CLS] and [SEP]
    head = short.predict_proba([text])
    ids = full_tokenizer_head(tiny, text, 16)
    np.testing.assert_allclose(head, full.predict_proba([ids]), atol=1e-5)
    with TestClient(S.create_app(short)) as c:
        assert c.get("/model").json()["limits"]["max_tokens"] == 16
        spec = c.get("/openapi.json").json()
        assert "16 tokens" in json.dumps(spec["paths"]["/predict"]["post"]["responses"]["200"])


def full_tokenizer_head(model_dir, text, n):
    """The text of the first ``n - 2`` word pieces of ``text`` (what a cut at ``n`` keeps)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok.decode(tok(text, truncation=True, max_length=n)["input_ids"][1:-1])


def test_an_app_enforces_and_publishes_its_own_limits(predictor):
    app = S.create_app(predictor, batching=False, max_texts=2, max_text_chars=5)
    with TestClient(app) as c:
        assert c.post("/predict", json={"text": ["abcde", "ok"]}).status_code == 200
        assert_json_error(c.post("/predict", json={"text": ["a"] * 3}), 422, "too_many_texts")
        assert_json_error(c.post("/predict", json={"text": "abcdef"}), 422, "text_too_long")
        published = c.get("/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]
        schema = published["content"]["application/json"]["schema"]
        assert schema == S.request_model(2, 5).model_json_schema()
        assert c.get("/model").json()["limits"]["max_texts"] == 2


def test_exactly_at_the_limits_is_accepted(client):
    assert client.post("/predict", json={"text": ["a"] * S.MAX_TEXTS}).status_code == 200
    assert client.post("/predict", json={"text": "b" * S.MAX_TEXT_CHARS}).status_code == 200
    r = client.post(
        "/predict",
        content=json.dumps({"text": "ok"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


def test_demo_page_contract(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    for needle in (
        '<textarea id="text"',
        '<button id="predict"',
        '<div id="results"',
        "prob-bar",
        "dataset.label",
        'id="token"',
    ):
        assert needle in html, needle
    # no outside asset: no http(s) URL in any src/href/import/url(), and a policy that forbids them
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", html)
    assert "https://" not in html and "http://" not in html
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_docs_work_offline(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "openapi.json" in r.text
    assert "http://" not in r.text.replace("http://HOST", "") and "https://" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")


def test_model_info(client):
    info = client.get("/model").json()
    assert info["labels"] == LABELS and info["backend"] == "onnx" and info["name"] == "tiny-model"
    assert info["version"] and info["token_required"] is False
    assert info["limits"] == {
        "max_texts": S.MAX_TEXTS,
        "max_text_chars": S.MAX_TEXT_CHARS,
        "max_body_bytes": S.MAX_BODY_BYTES,
        "max_tokens": MAX_TOKENS,
    }


def test_torch_backend_agrees_with_onnx(tiny, predictor):
    torch_predictor = S.load_predictor(tiny, "torch")
    texts = ["nice", "awful delay", "the seat was fine I guess"]
    np.testing.assert_allclose(
        torch_predictor.predict_proba(texts), predictor.predict_proba(texts), atol=0.05
    )
    with pytest.raises(ValueError, match="backend"):
        S.load_predictor(tiny, "tensorflow")


def test_an_internal_failure_is_a_json_500_and_the_server_survives(predictor):
    calls = {"n": 0}

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return predictor.predict_proba(texts)

    broken = S.Predictor(flaky, LABELS, "flaky", "onnx")
    for batching in (True, False):
        calls["n"] = 0
        app = S.create_app(broken, batching=batching)
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post("/predict", json={"text": "x"})
            assert_json_error(r, 500, "internal_error")
            assert "boom" not in r.text  # no internals leak to the client
            assert c.post("/predict", json={"text": "x"}).status_code == 200


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.text(max_size=50).map(lambda t: json.dumps({"text": t}).encode()),
    )
)
def test_any_body_gets_200_or_4xx_never_500(client, body):
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (body, r.status_code, r.text)
    assert "error" in r.json() or "predictions" in r.json()


def test_micro_batcher_groups_concurrent_requests_and_keeps_them_apart():
    from concurrent.futures import ThreadPoolExecutor

    seen = []

    def fn(texts):
        seen.append(len(texts))
        time.sleep(0.02)  # a slow model call, so that requests queue up behind it
        return [t.upper() for t in texts]

    async def scenario():
        batcher = S.MicroBatcher(fn, ThreadPoolExecutor(1), max_batch=5)
        batcher.start()
        requests = [[f"r{i}a", f"r{i}b"] for i in range(8)]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.stop()
        return requests, results

    requests, results = asyncio.run(scenario())
    assert results == [[t.upper() for t in r] for r in requests]
    assert sum(seen) == 16 and max(seen) <= 5 and max(seen) > 2, seen


def test_micro_batcher_passes_failures_to_every_waiter():
    from concurrent.futures import ThreadPoolExecutor

    def fn(texts):
        raise ValueError("bad batch")

    async def scenario():
        batcher = S.MicroBatcher(fn, ThreadPoolExecutor(1))
        batcher.start()
        out = await asyncio.gather(
            *(batcher.submit(["a"]) for _ in range(3)), return_exceptions=True
        )
        await batcher.stop()
        return out

    assert all(isinstance(e, ValueError) for e in asyncio.run(scenario()))
