"""course_lib.serve: every bad input gets a 4xx JSON error and the server keeps serving.

Most tests drive the app in-process (Starlette's TestClient); the ``real_server`` ones start
``python -m course_lib serve`` as a subprocess on a free loopback port. The model is a tiny random
BERT classifier (built in a second), never the real fine-tuned one.
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from course_lib import optimize as O
from course_lib import serve as S

TOKEN = "test-token-3f9c2a"
LABELS = ["negative", "neutral", "positive"]

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
    f"list over the limit ({S.MAX_TEXTS + 1} texts)": (422, "too_many_texts"),
    f"text over the limit ({S.MAX_TEXT_CHARS + 1} chars)": (422, "text_too_long"),
    "lone surrogate": (422, "invalid_text"),
    f"body over the limit (> {S.MAX_BODY_BYTES} bytes)": (413, "body_too_large"),
    "unknown path": (404, "not_found"),
    "wrong method": (405, "method_not_allowed"),
    "missing token": (401, "missing_token"),
    "wrong token": (403, "wrong_token"),
}
CASES = {c.case: c for c in S.bad_inputs()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny classifier, and an artifacts folder (inherited by server subprocesses) for its ONNX export."""
    root = tmp_path_factory.mktemp("serve")
    saved = os.environ.get("COURSE_ARTIFACTS")
    os.environ["COURSE_ARTIFACTS"] = str(root / "artifacts")
    folder = O.tiny_classifier(root / "tiny-model")
    O.onnx_files(folder)  # export once, here; the server subprocess finds it in the cache
    yield folder
    if saved is None:
        os.environ.pop("COURSE_ARTIFACTS", None)
    else:
        os.environ["COURSE_ARTIFACTS"] = saved


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


def test_the_bad_input_list_covers_the_issue():
    names = " | ".join(CASES)
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
    assert set(CASES) == set(EXPECTED)
    assert all(CASES[name].expected_status == status for name, (status, _) in EXPECTED.items())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bad_input_gets_4xx_json_and_the_server_keeps_serving(name, client, token_client):
    case = CASES[name]
    status, code = EXPECTED[name]
    c, auth = (token_client, {}) if case.needs_token else (client, {})
    r = c.request(case.method, case.path, content=case.body, headers={**case.headers, **auth})
    assert_json_error(r, status, code)
    assert_still_serving(client)
    assert_still_serving(token_client, {"Authorization": f"Bearer {TOKEN}"})


def test_body_over_the_limit_without_content_length_is_refused(client):
    chunk = b'{"text": "' + b"x" * 1000
    r = client.post(
        "/predict",
        content=(chunk for _ in range(100)),
        headers={"Content-Type": "application/json"},
    )
    assert_json_error(r, 413, "body_too_large")
    assert_still_serving(client)


def test_token_rules(token_client):
    good = {"Authorization": f"Bearer {TOKEN}"}
    r = token_client.post("/predict", json={"text": "hi"})
    assert_json_error(r, 401, "missing_token")
    assert r.headers["www-authenticate"] == "Bearer"
    for header in ("Basic abc", "Bearer", "Bearer ", TOKEN):
        assert_json_error(
            token_client.post("/predict", json={"text": "hi"}, headers={"Authorization": header}),
            401,
            "missing_token",
        )
    assert_json_error(
        token_client.post(
            "/predict", json={"text": "hi"}, headers={"Authorization": b"Bearer \xff\xfe-not-ascii"}
        ),
        403,
        "wrong_token",
    )
    assert_json_error(
        token_client.post(
            "/predict", json={"text": "hi"}, headers={"Authorization": f"Bearer {TOKEN}x"}
        ),
        403,
        "wrong_token",
    )
    assert (
        token_client.post(
            "/predict", json={"text": "hi"}, headers={"Authorization": f"bearer {TOKEN}"}
        ).status_code
        == 200
    )
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
    # int8 activations are quantised per batch, so a text's scores move slightly with its batch-mates
    assert len(single) == 1 and single[0]["scores"] == pytest.approx(preds[1]["scores"], abs=2e-3)


def test_long_texts_within_the_character_limit_are_truncated_and_flagged(client):
    long_text = "bad " * 240  # 960 characters, 242 tokens
    assert len(long_text) <= S.MAX_TEXT_CHARS
    p = client.post("/predict", json={"text": [long_text, "short"]}).json()["predictions"]
    assert p[0]["truncated"] is True and p[1]["truncated"] is False


def test_exactly_at_the_limits_is_accepted(client):
    assert client.post("/predict", json={"text": ["a"] * S.MAX_TEXTS}).status_code == 200
    assert client.post("/predict", json={"text": "b" * S.MAX_TEXT_CHARS}).status_code == 200
    assert (
        client.post(
            "/predict",
            content=json.dumps({"text": "ok"}).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        ).status_code
        == 200
    )


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
    assert (
        r.status_code == 200
        and "openapi.json" in r.text
        and "http://" not in r.text.replace("http://HOST", "")
    )
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/health", "/model"} <= set(spec["paths"])
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert "text" in schema["properties"] and schema.get("additionalProperties") is False


def test_model_info(client):
    info = client.get("/model").json()
    assert info["labels"] == LABELS and info["backend"] == "onnx" and info["name"] == "tiny-model"
    assert info["version"] and info["token_required"] is False
    assert info["limits"] == {
        "max_texts": S.MAX_TEXTS,
        "max_text_chars": S.MAX_TEXT_CHARS,
        "max_body_bytes": S.MAX_BODY_BYTES,
        "max_tokens": S.MAX_TOKENS,
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
        with TestClient(
            S.create_app(broken, batching=batching), raise_server_exceptions=False
        ) as c:
            r = c.post("/predict", json={"text": "x"})
            assert_json_error(r, 500, "internal_error")
            assert "boom" not in r.text  # no internals leak to the client
            assert c.post("/predict", json={"text": "x"}).status_code == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"text": json_values})))
def test_validate_texts_accepts_good_input_or_raises_a_4xx(payload):
    try:
        texts = S.validate_texts(payload)
    except S.ApiError as err:
        assert 400 <= err.status < 500 and err.code and err.message
    else:
        assert isinstance(texts, list) and 1 <= len(texts) <= S.MAX_TEXTS
        assert all(isinstance(t, str) and t.strip() and len(t) <= S.MAX_TEXT_CHARS for t in texts)


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
        time.sleep(0.02)
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


def test_exposure_warning_only_for_open_addresses_without_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert S.exposure_warning(host, None) is None, host
    assert "WITHOUT a token" in S.exposure_warning("0.0.0.0", None)
    assert S.TOKEN_ENV in S.exposure_warning("0.0.0.0", None)
    assert S.exposure_warning("0.0.0.0", "a-token") is None
    assert S.exposure_warning("192.168.1.20", None) is not None


def test_batching_auto_is_on_for_torch_only():
    assert (
        S.resolve_batching("auto", "torch") is True and S.resolve_batching("auto", "onnx") is False
    )
    assert S.resolve_batching("on", "onnx") is True and S.resolve_batching("off", "torch") is False
    with pytest.raises(ValueError):
        S.resolve_batching("sometimes", "onnx")
    assert S.build_parser().parse_args(["--no-batching"]).batching == "off"


def test_cli_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert S.main(["--model", str(tmp_path), "--port", str(S.free_port())]) == 2
    assert "save_pretrained" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        S.main(["--help"])
    assert exit_.value.code == 0


def test_cli_warns_loudly_before_binding_an_open_address(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(S.TOKEN_ENV, raising=False)
    assert S.main(["--model", str(tmp_path), "--host", "0.0.0.0"]) == 2  # fails later, on the model
    assert "WARNING" in capsys.readouterr().err


def _port_closed(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_real_server_subprocess_end_to_end(tiny, tmp_path):
    """One real ``python -m course_lib serve`` on a free loopback port, with a token."""
    server = S.ServerProcess(tiny, backend="onnx", token=TOKEN, log_path=tmp_path / "serve.log")
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(
            server.url + "/predict", json={"text": ["good", "bad"]}, headers=auth, trust_env=False
        )
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        rows = S.send_bad_inputs(server.url, token=TOKEN)
        assert len(rows) == len(EXPECTED) and all(row["ok"] for row in rows), [
            r for r in rows if not r["ok"]
        ]
        big = (b"x" * 4096 for _ in range(20))  # chunked, no Content-Length
        r = httpx.post(
            server.url + "/predict",
            content=big,
            headers={"Content-Type": "application/json", **auth},
            trust_env=False,
        )
        assert_json_error(r, 413, "body_too_large")
        result = S.load_test(
            server.url,
            ["great flight", "lost my bag", "meh"],
            requests=2000,
            concurrency=16,
            token=TOKEN,
        )
        assert result.errors == 0, result.error_samples
        assert len(result.latencies_ms) == 2000 and result.requests_per_s > 0
        assert result.percentile(50) <= result.percentile(95) <= result.percentile(99)
        assert httpx.get(server.url + "/health", trust_env=False).status_code == 200
        pid = server.process.pid
    assert not server.running() and _port_closed(server.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    assert "token required" in server.log()


def test_server_start_failure_is_reported(tmp_path):
    server = S.ServerProcess(tmp_path, startup_timeout=60)
    with pytest.raises(RuntimeError, match="exited with status 2"):
        server.start()
    server.stop()


def test_server_exits_when_its_parent_dies():
    """The watch that stops a server whose notebook kernel was killed (no atexit runs then)."""
    child = (
        "import time; from course_lib.serve import _exit_when_parent_dies; "
        "_exit_when_parent_dies(0.1); print('ready', flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', %r]); "
        "print(p.pid, flush=True); import time; time.sleep(60)" % child
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        child_pid = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"  # the child's watch is running
        os.kill(child_pid, 0)  # alive
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child_pid, 0)
            except ProcessLookupError:
                break
            try:  # reaped by init, or a zombie of ours? either way it must be gone
                if open(f"/proc/{child_pid}/stat").read().split()[2] == "Z":
                    break
            except FileNotFoundError:
                break
            time.sleep(0.1)
        else:
            os.kill(child_pid, signal.SIGKILL)
            pytest.fail("the orphaned server did not exit after its parent died")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
