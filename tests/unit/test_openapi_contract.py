"""``/openapi.json`` is the service's exact contract: an independent fuzzer holds the server to it.

Schemathesis (pinned in requirements.txt) reads the contract of a real ``python -m course_lib
serve`` process on a loopback port and sends it schema-valid and schema-invalid requests, with
every check on: no 5xx, every status and body as documented, every schema-valid request accepted
("positive data acceptance"), every invalid one refused, the token enforced where the contract
says so. Four servers: ONNX and PyTorch backends, each with and without a token. Bounded: a fixed
seed, ``MAX_EXAMPLES`` per operation (fewer under the quick profile), and a timeout per run.
"""

import copy
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from tiny_models import artifacts_env, tiny_served_model

from course_lib import serving as S
from course_lib.settings import by_profile

TOKEN = "fuzz-token-7d1e"
MAX_EXAMPLES = by_profile(full=40, quick=15)  # per operation, in each phase
CONFIGS = [(backend, token) for backend in S.BACKENDS for token in (None, TOKEN)]
IDS = [f"{backend}-{'token' if token else 'no-token'}" for backend, token in CONFIGS]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The four servers, started at once (they load their models in parallel)."""
    with artifacts_env():
        folder = tiny_served_model(tmp_path_factory.mktemp("contract"))
        started = [S.ServerProcess(folder, backend=b, token=t) for b, t in CONFIGS]
        try:
            for server in started:
                S.ChildProcess.start(server)  # spawn only; wait below, all together
            for server in started:
                server.wait_for_http(server.url + "/health", server.startup_timeout)
            yield dict(zip(IDS, started))
        finally:
            for server in started:
                server.stop()


def run_fuzzer(url: str, token: str | None, workdir: Path, extra: tuple = ()) -> dict:
    """``st run`` against ``url``'s contract, every check on; its JSON report."""
    report = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        url + "/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "16",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    command += list(extra)
    # in a folder of its own: st keeps replay files in ./.schemathesis
    out = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=180)
    if not report.is_file():
        pytest.fail(f"schemathesis wrote no report (exit {out.returncode}):\n{out.stdout[-4000:]}")
    return json.loads(report.read_text()) | {"output": out.stdout}


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("config", IDS)
def test_the_server_keeps_its_openapi_contract(config, servers, tmp_path):
    server = servers[config]
    start = time.perf_counter()
    report = run_fuzzer(server.url, server.token, tmp_path)
    seconds = time.perf_counter() - start
    cases = report["test_cases"]
    print(f"\n{config}: {cases['generated']} cases in {seconds:.1f} s")
    failures = report["failures"] or report["errors"]
    assert report["exit_code"] == 0 and not failures, report["output"][-6000:]
    assert report["complete"] and report["operations"]["tested"] == 3, report["operations"]
    assert cases["generated"] >= 3 * MAX_EXAMPLES // 2 and cases["errored"] == 0, cases
    warned = {name: found for name, found in report["warnings"].items() if found}
    assert not warned, warned  # e.g. a token the contract never asks for, or an unusable regex
    assert server.running(), server.log()[-3000:]


@pytest.mark.subprocess
@pytest.mark.parametrize("config", [name for name, (_, token) in zip(IDS, CONFIGS) if token])
def test_token_refusals_keep_the_contract(config, servers):
    """The fuzzer sends its requests with the right token, and a wrong one only as a probe whose
    answer it does not check against the contract: these requests, with schemathesis' checks."""
    import schemathesis

    server = servers[config]
    operation = schemathesis.openapi.from_url(server.url + "/openapi.json")["/predict"]["POST"]
    for authorization, code, challenge in [
        (None, "missing_token", "Bearer"),
        ("Basic dXNlcjpwYXNz", "missing_token", "Bearer"),
        ("Bearer not-the-token", "invalid_token", 'Bearer error="invalid_token"'),
        (f"Bearer {server.token}", None, None),
    ]:
        headers = {"Authorization": authorization} if authorization else {}
        case = operation.Case(body={"text": "hi"}, headers=headers, media_type="application/json")
        response = case.call_and_validate()  # raises on anything the contract does not allow
        assert response.status_code == (401 if code else 200), authorization
        if code:
            assert response.json()["error"] == code, authorization
            assert response.headers["www-authenticate"] == [challenge], authorization


def test_the_contract_says_what_the_server_enforces():
    """The parts of the contract a generated client depends on, read from a built app."""
    predictor = S.Predictor(lambda texts: [[1.0, 0.0]] * len(texts), ["neg", "pos"], "m", "onnx")
    for token in (None, TOKEN):
        spec = S.openapi_contract(predictor, "1", token=bool(token))
        predict = spec["paths"]["/predict"]["post"]
        body = predict["requestBody"]
        schema = body["content"]["application/json"]["schema"]
        assert schema == S.request_model().model_json_schema()  # the model's, not a copy
        assert schema["additionalProperties"] is False and schema["required"] == ["text"]
        one, many = schema["properties"]["text"]["oneOf"]
        assert (one["minLength"], one["maxLength"], one["pattern"]) == (1, S.MAX_TEXT_CHARS, r"\S")
        assert (many["minItems"], many["maxItems"], many["items"]) == (1, S.MAX_TEXTS, one)
        assert body["x-max-body-bytes"] == S.MAX_BODY_BYTES
        documented = set(predict["responses"])
        expected = {str(s) for s, _, _ in S.ERRORS} | {"200"}
        assert documented == (expected if token else expected - {"401"}), documented
        assert "403" not in documented  # RFC 6750: a wrong token is a 401 too
        for status, response in predict["responses"].items():
            errors = response["content"]["application/json"]["schema"]
            if status != "200":
                assert errors["required"] == ["error", "message"], status
                codes = {c for s, c, _ in S.ERRORS if str(s) == status}
                assert set(errors["properties"]["error"]["enum"]) == codes, status
        assert ("security" in predict) is bool(token)
        assert ("components" in spec) is bool(token)
        if token:
            scheme = spec["components"]["securitySchemes"]["bearerAuth"]
            assert scheme == {"type": "http", "scheme": "bearer"}
            challenge = predict["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert challenge["required"] is True
            assert challenge["schema"]["enum"] == ["Bearer", 'Bearer error="invalid_token"']


@contextmanager
def served_in_a_thread(app):
    """``app`` under uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    port = S.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.subprocess
def test_the_fuzzer_catches_a_contract_that_allows_empty_texts(tmp_path):
    """The control experiment: the contract's first bug put back (the schema forgets that a text
    must not be empty), and the fuzzer must report a schema-valid request refused."""
    labels = ["negative", "neutral", "positive"]
    uniform = S.Predictor(lambda texts: [[1 / 3] * 3 for _ in texts], labels, "fake", "onnx")
    app = S.create_app(uniform, batching=False)
    broken = copy.deepcopy(app.openapi())
    request = broken["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    one, many = request["schema"]["properties"]["text"]["oneOf"]
    for text in (one, many["items"]):
        text.pop("minLength", None), text.pop("pattern", None)
    app.openapi = lambda: broken
    with served_in_a_thread(app) as url:
        # the first failure is enough, and needs no shrinking to a minimal example
        report = run_fuzzer(url, None, tmp_path, ("--max-failures", "1", "--no-shrink"))
    found = {failure["code"] for failure in report["failures"]}
    assert report["exit_code"] != 0 and "ST202" in found, report["output"][-3000:]
