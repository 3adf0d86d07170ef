"""``python -m course_lib serve`` as a real process: the command line, start and stop, nothing left.

The model is a tiny random BERT classifier (built in a second), never the real fine-tuned one.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from test_serving_validation import EXPECTED
from tiny_models import artifacts_env, tiny_served_model

from course_lib import serving as S

TOKEN = "test-token-3f9c2a"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with artifacts_env():
        yield tiny_served_model(tmp_path_factory.mktemp("serving-process"))


def test_exposure_warning_only_for_open_addresses_without_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5", "[::1]"):
        assert S.exposure_warning(host, None) is None, host
    assert "WITHOUT a token" in S.exposure_warning("0.0.0.0", None)
    assert S.TOKEN_ENV in S.exposure_warning("0.0.0.0", None)
    assert S.exposure_warning("0.0.0.0", "a-token") is None
    assert S.exposure_warning("192.168.1.20", None) is not None


def test_batching_auto_is_on_for_torch_only():
    assert S.resolve_batching("auto", "torch") is True
    assert S.resolve_batching("auto", "onnx") is False
    assert S.resolve_batching("on", "onnx") is True and S.resolve_batching("off", "torch") is False
    with pytest.raises(ValueError):
        S.resolve_batching("sometimes", "onnx")
    assert S.build_parser().parse_args(["--no-batching"]).batching == "off"


def test_cli_refuses_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert S.main(["--model", str(tmp_path), "--port", str(S.free_port())]) == 2
    assert "save_pretrained" in capsys.readouterr().err
    assert S.main(["--model", str(tmp_path), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        S.main(["--help"])
    assert exit_.value.code == 0


def test_cli_warns_loudly_before_binding_an_open_address(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(S.TOKEN_ENV, raising=False)
    assert S.main(["--model", str(tmp_path), "--host", "0.0.0.0"]) == 2  # fails later, on the model
    assert "WARNING" in capsys.readouterr().err


def test_python_m_course_lib_serve_dispatches_to_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "course_lib", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "--backend" in out.stdout and "--batching" in out.stdout


def _port_closed(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.subprocess
@pytest.mark.slow
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
            row for row in rows if not row["ok"]
        ]
        big = (b"x" * 65536 for _ in range(S.MAX_BODY_BYTES // 65536 + 2))  # chunked
        r = httpx.post(
            server.url + "/predict",
            content=big,
            headers={"Content-Type": "application/json", **auth},
            trust_env=False,
        )
        assert r.status_code == 413 and r.json()["error"] == "body_too_large"
        result = S.load_test(
            server.url, ["great flight", "lost my bag", "meh"], 500, concurrency=16, token=TOKEN
        )
        assert result.errors == 0, result.error_samples
        assert len(result.latencies_ms) == 500 and result.requests_per_s > 0
        assert result.percentile(50) <= result.percentile(95) <= result.percentile(99)
        with S.ServiceClient(server.url, token=TOKEN) as api:
            assert [p["label"] for p in api.predict(["good", "bad"])] == [
                p["label"] for p in r_json_predictions(server.url, ["good", "bad"])
            ]
            with pytest.raises(S.ContractError, match="text"):
                api.predict([])  # refused locally, from the contract, before sending
        pid = server.process.pid
    assert not server.running() and _port_closed(server.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    assert "token required" in server.log() and not server.leftovers()


def r_json_predictions(url, texts):
    r = httpx.post(
        url + "/predict",
        json={"text": texts},
        headers={"Authorization": f"Bearer {TOKEN}"},
        trust_env=False,
    )
    return r.json()["predictions"]


@pytest.mark.subprocess
def test_server_start_failure_is_reported(tmp_path):
    server = S.ServerProcess(tmp_path, startup_timeout=60)
    with pytest.raises(RuntimeError, match="exited with status 2"):
        server.start()
    server.stop()


@pytest.mark.subprocess
def test_child_process_stop_ends_descendants_that_left_the_group(tmp_path):
    """Like Jupyter's kernels: a grandchild in a session of its own is ended too."""
    grandchild = "import time; time.sleep(120)"
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], start_new_session=True); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    child = S.ChildProcess([sys.executable, "-c", parent], tmp_path / "child.log").start()
    try:
        deadline = time.monotonic() + 30
        while not child.log().strip() and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the grandchild's pid to be printed
        grand_pid = int(child.log().split()[0])
        child._remember_descendants()
        assert grand_pid in child.leftovers()
    finally:
        child.stop()
    assert not child.leftovers()
    assert not psutil.pid_exists(grand_pid) or psutil.Process(grand_pid).status() == "zombie"


@pytest.mark.subprocess
def test_server_exits_when_its_parent_dies():
    """The watch that stops a server whose notebook kernel was killed (no atexit runs then)."""
    child = (
        "import time; from course_lib.serving.cli import exit_when_parent_dies; "
        "exit_when_parent_dies(0.1); print('ready', flush=True); time.sleep(60)"
    )
    parent = (
        f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
        "print(p.pid, flush=True); import time; time.sleep(60)"
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


@pytest.mark.subprocess
@pytest.mark.slow
def test_no_server_outlives_the_servers_a_notebook_started(tiny):
    """Lesson 07 starts servers and stops them; ask the OS that no course_lib process is left.

    Processes that were there before (in a full run, servers that other tests' fixtures keep
    for the session) are not this test's business."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    servers = [S.ServerProcess(tiny, backend=b).start() for b in ("onnx", "torch")]
    for s in servers:
        s.stop()
    left = []
    for child in psutil.Process().children(recursive=True):
        if child.pid in before:
            continue
        try:
            if "course_lib" in " ".join(child.cmdline()) and child.status() != "zombie":
                left.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    assert [s.running() for s in servers] == [False, False] and not left, left


def test_littles_law_and_its_checker(capsys):
    assert S.littles_law_latency_ms(16, 250.0) == pytest.approx(64.0)
    assert S.littles_law_latency_ms(1, 100) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="requests_per_s must be > 0"):
        S.littles_law_latency_ms(16, 0)

    def in_ms(c, x):
        return c / x * 1000  # another order of the same operations

    assert S.check_mean_latency(in_ms) is in_ms
    assert "[correct]" in capsys.readouterr().out

    def unsolved(c, x):
        raise NotImplementedError

    assert S.check_mean_latency(unsolved) is S.littles_law_latency_ms
    assert "[skipped]" in capsys.readouterr().out

    def in_seconds(c, x):
        return c / x

    assert S.check_mean_latency(in_seconds) is S.littles_law_latency_ms
    out = capsys.readouterr().out
    assert "[not yet]" in out and "returned 0.064, which is too small by a factor of 1,000" in out
    assert "64.0" not in out  # the answer for 16 in flight at 250/s: shown only on request
    S.check_mean_latency(in_seconds)  # a second wrong try shows it
    assert "The answer here: 64.0." in capsys.readouterr().out


def test_plot_latency_histograms_puts_the_legend_beside_the_data():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {
        "fast": S.LoadTestResult(100, 4, 1.0, list(range(10, 110)), 0),
        "slow": S.LoadTestResult(50, 4, 1.0, list(range(100, 150)), 0),
    }
    fig, ax = plt.subplots(layout="constrained")
    S.plot_latency_histograms(runs, ax=ax, title="t")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["fast: 100 req/s", "slow: 50 req/s", "p50", "p95", "p99"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel() == "density"
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # outside the axes: covers no data
    plt.close(fig)


def test_tls_files_go_together_and_must_exist(tmp_path):
    assert S.tls_files(None, None) is None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not checked here")
    with pytest.raises(ValueError, match="go together"):
        S.tls_files(str(cert), None)
    with pytest.raises(ValueError, match="--ssl-keyfile .*no such file"):
        S.tls_files(str(cert), str(key))
    key.write_text("not checked here")
    assert S.tls_files(str(cert), str(key)) == (str(cert), str(key))


def test_cli_refuses_half_a_certificate(tmp_path, capsys):
    assert S.main(["--model", str(tmp_path), "--ssl-certfile", str(tmp_path / "c.pem")]) == 2
    assert "go together" in capsys.readouterr().err


def test_cleartext_warning_for_a_token_over_plain_http_to_the_network():
    for host in ("127.0.0.1", "localhost", "::1"):
        assert S.cleartext_token_warning(host, "a-token", tls=False) is None, host
    assert S.cleartext_token_warning("0.0.0.0", None, tls=False) is None  # exposure_warning's case
    assert S.cleartext_token_warning("0.0.0.0", "a-token", tls=True) is None
    note = S.cleartext_token_warning("0.0.0.0", "a-token", tls=False)
    assert "clear text" in note and "--ssl-certfile" in note


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 127.0.0.1 and its key, made by the openssl command line tool."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.subprocess
@pytest.mark.slow
def test_server_with_a_certificate_speaks_https_only(tiny, self_signed, tmp_path):
    """``--ssl-certfile/--ssl-keyfile`` reach uvicorn: the token travels inside TLS, a client that
    does not trust the certificate is refused, and plain HTTP gets no answer."""
    server = S.ServerProcess(
        tiny, token=TOKEN, tls=self_signed, log_path=tmp_path / "serve.log"
    ).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        r = httpx.post(
            server.url + "/predict",
            json={"text": "good"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=server.verify(),
            trust_env=False,
        )
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/health", trust_env=False)  # the system's CAs: not trusted
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https:", "http:") + "/health", trust_env=False)
        assert "https://" in server.log()
    finally:
        server.stop()
    assert not server.leftovers()
