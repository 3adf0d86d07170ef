"""Test-wide setup: the offline guard, and which tests must share one process.

The offline guard: kernels and servers inherit this process's environment, and ``import
course_lib`` installs the guard when ``COURSE_OFFLINE_GUARD`` is set. Every refused connection is
also written to the file named by ``COURSE_OFFLINE_LOG``; the session fails if that file is not
empty at the end, even when the code that tried swallowed the exception. With pytest-xdist
(``-n 2``) the workers inherit the controller's log file, and the controller reads it.

Sharing a process: under pytest-xdist, ``--dist loadgroup`` keeps each group on one worker, in
collection order. A notebook's cells share one kernel, so each notebook is one group; the tests
that need lesson 05's model (its notebook first, which trains it) form one group, and so do
lesson 09's; a unit-test module keeps its module-scoped fixtures in one process.
"""

import os
import tempfile
from pathlib import Path

import pytest

# Notebook-name prefixes whose tests share a trained model: the first one trains it.
MODEL_CHAINS = {
    "finetuned-minilm": ("05_", "06_", "07_", "10_", "test_demo_page"),
    "gpt-tweets": ("09_",),
}


def pytest_configure(config):
    os.environ["COURSE_OFFLINE_GUARD"] = "1"
    if "COURSE_OFFLINE_LOG" not in os.environ:  # set once, by the controller
        log = Path(tempfile.mkdtemp(prefix="course-offline-")) / "violations.log"
        os.environ["COURSE_OFFLINE_LOG"] = str(log)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from course_lib.tooling.offline import install_guard

    install_guard()


def _group_of(item) -> str:
    path = Path(str(item.fspath))
    names = [path.name]
    callspec = getattr(item, "callspec", None)
    if callspec is not None:  # a browser test parametrised by notebook
        names += [str(getattr(v, "name", None) or v) for v in callspec.params.values()]
    for group, prefixes in MODEL_CHAINS.items():
        if any(name.startswith(prefixes) for name in names):
            return group
    return path.name


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group_of(item)))


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
