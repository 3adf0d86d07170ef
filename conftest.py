"""Test-wide setup: the offline guard, for this process and every notebook kernel it starts.

Kernels inherit this process's environment, and ``import course_lib`` installs the guard when
``COURSE_OFFLINE_GUARD`` is set. Every refused connection is also written to the file named by
``COURSE_OFFLINE_LOG``; the session fails if that file is not empty at the end, even when the
code that tried swallowed the exception.
"""

import os
import tempfile
from pathlib import Path

import pytest

_log = Path(tempfile.mkdtemp(prefix="course-offline-")) / "violations.log"


def pytest_configure(config):
    os.environ["COURSE_OFFLINE_GUARD"] = "1"
    os.environ["COURSE_OFFLINE_LOG"] = str(_log)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from course_lib.tooling.offline import install_guard

    install_guard()


def pytest_sessionfinish(session, exitstatus):
    if _log.exists() and _log.read_text().strip():
        print(
            "\nOFFLINE GUARD: these network attempts were made during the tests:\n"
            + _log.read_text()
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
