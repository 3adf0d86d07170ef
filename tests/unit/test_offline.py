"""The offline guard: it must trip on an outside address, in this process, in subprocesses and
in notebook kernels, and must let loopback through."""

import os
import socket
import subprocess
import sys
import textwrap

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.runtime import offline

OUTSIDE = ("203.0.113.7", 80)  # TEST-NET-3: reserved for documentation, never routed


@pytest.fixture
def private_log(tmp_path, monkeypatch):
    """Send this test's deliberate violations to its own log, not the session's."""
    log = tmp_path / "violations.log"
    monkeypatch.setenv(offline.LOG_ENV, str(log))
    return log


def test_guard_is_on_during_tests():
    assert offline.guard_requested()
    assert socket.socket.connect is offline._guarded_connect


def test_guard_trips_on_outside_address(private_log):
    with socket.socket() as s, pytest.raises(offline.OfflineViolation, match="203.0.113.7"):
        s.connect(OUTSIDE)
    assert "203.0.113.7" in private_log.read_text()


def test_guard_trips_on_name_lookup_and_create_connection(private_log):
    with pytest.raises(offline.OfflineViolation):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(offline.OfflineViolation):
        socket.create_connection(("example.com", 80), timeout=1)


def test_guard_lets_loopback_through():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=5):
            conn, _ = server.accept()
            conn.close()


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("8.8.8.8", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, expected):
    assert offline.is_loopback(host) is expected


def test_guard_trips_in_a_subprocess_that_imports_course_lib(private_log):
    code = textwrap.dedent("""
        import course_lib, urllib.request
        try:
            urllib.request.urlopen("http://203.0.113.7/", timeout=2)
        except Exception as exc:
            print(type(exc).__name__, exc)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert "offline guard" in out.stdout + out.stderr
    assert "203.0.113.7" in private_log.read_text()


def test_guard_trips_inside_a_notebook_kernel(private_log):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            textwrap.dedent("""
        import course_lib, socket
        device = course_lib.setup(verbose=False)
        try:
            socket.create_connection(("203.0.113.7", 80), timeout=2)
        except Exception as exc:
            print(type(exc).__name__)
    """)
        )
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert "OfflineViolation" in nb.cells[0].outputs[0]["text"]
    assert "203.0.113.7" in private_log.read_text()
