"""Test-wide setup: the offline guard, and how tests share two CPU cores.

The offline guard: kernels and servers inherit this process's environment, and ``import
course_lib`` installs the guard when ``COURSE_OFFLINE_GUARD`` is set. Every refused connection is
also written to the file named by ``COURSE_OFFLINE_LOG``; the session fails if that file is not
empty at the end, even when the code that tried swallowed the exception. Under pytest-xdist the
workers inherit the controller's log file, and the controller reads it.

Sharing the cores: ``make test`` runs on two pytest-xdist workers (``-n 2 --dist loadscope``).
Each worker gets its share of the cores as ``OMP_NUM_THREADS``, which its kernels, servers and
torchrun inherit and ``setup()`` honours: with a thread per core in each of two processes, the
threads wait for each other (on the CI machine lesson 09's training ran past 900 s instead of
about two minutes).
``CourseScheduling`` below decides what must stay together on one worker, in collection order:
a notebook's cells (they share one kernel), a test module (module-scoped fixtures), and each
chain of tests that reuse a trained model, starting with the notebook that trains it.
"""

import os
import re
import tempfile
from pathlib import Path

import pytest

# Tests that reuse a model another test trains, in the order they must run (the first trains it).
# Matched against node ids: nbval's "notebooks/05_fine_tuning::ipynb::Cell 3" and the browser
# tests' "tests/browser/test_jupyterlab.py::test_notebook_in_jupyterlab[05_fine_tuning]".
MODEL_CHAINS = {
    "chain:finetuned-minilm": re.compile(
        r"^notebooks/(05|06|07|10)_|^tests/browser/test_jupyterlab\.py::.*\[05_"
        r"|^tests/browser/test_demo_page\.py"
    ),
    "chain:gpt-tweets": re.compile(r"^notebooks/09_|^tests/browser/test_jupyterlab\.py::.*\[09_"),
}

if "COURSE_OFFLINE_LOG" not in os.environ:  # set once, by the controller; workers inherit it
    os.environ["COURSE_OFFLINE_LOG"] = str(
        Path(tempfile.mkdtemp(prefix="course-offline-")) / "violations.log"
    )


def pytest_configure(config):
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    os.environ["COURSE_OFFLINE_GUARD"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from course_lib.runtime.offline import install_guard

    install_guard()


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its model chain, else its file."""
    for chain, pattern in MODEL_CHAINS.items():
        if pattern.search(nodeid):
            return chain
    return nodeid.split("::", 1)[0]


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # without pytest-xdist everything runs in one process, in collection order
    LoadScopeScheduling = None
else:

    class CourseScheduling(LoadScopeScheduling):
        """``--dist loadscope`` with the course's scopes (see ``scope_of``). xdist hands out the
        largest scopes first, so the long model chain starts at once."""

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") == "loadscope":
            return CourseScheduling(config, log)
        return None


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller reads the shared log
    log = Path(os.environ["COURSE_OFFLINE_LOG"])
    if log.exists() and log.read_text().strip():
        print(
            "\nOFFLINE GUARD: these network attempts were made during the tests:\n"
            + log.read_text()
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
