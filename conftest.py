"""Test-wide setup: the quick profile, the offline guard, the trained models the tests share, and
how the tests share two CPU cores.

The profile: the suite runs under ``COURSE_PROFILE=quick`` (shorter training, fewer timing
rounds; ``make test-full`` runs it under ``full``). Kernels, servers and torchrun ranks inherit
the environment set here.

The offline guard: ``import course_lib`` installs it when ``COURSE_OFFLINE_GUARD`` is set. Every
refused connection is also written to the file named by ``COURSE_OFFLINE_LOG``; the session
fails if that file is not empty at the end, even when the code that tried swallowed the
exception. Under pytest-xdist the workers inherit the controller's log file, and the controller
reads it.

Trained models: the session keeps its models in a fresh folder (``COURSE_ARTIFACTS``, unless
set already) and reuses a model trained with the same settings (``COURSE_REUSE_MODELS=1``).
Whoever needs lesson 05's fine-tuned model or lesson 09's decoder first trains it, under a file
lock; every other test, notebook kernel or worker waits for that one and reuses it. The fixtures
``finetuned_model_folder`` and ``gpt_model_folder`` give them to tests, and the notebooks that
load the fine-tuned model (06, 07, 10) get it before their first cell runs.

Sharing the cores: ``make test`` runs on two pytest-xdist workers with ``--dist loadfile``: a
notebook's cells stay together on one worker, in order (they share a kernel), and so do the
tests of one module (module-scoped fixtures). The files are handed out in collection order
(``--no-loadscope-reorder``), which ``pytest_collection_modifyitems`` sets: the long notebooks
first. Each worker gets its share of the cores as ``OMP_NUM_THREADS``, which its kernels, servers
and torchrun inherit and ``setup()`` honours: with a thread per core in each of two processes,
the threads wait for each other.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Notebooks whose kernels load lesson 05's fine-tuned model: it is made before their first cell.
NEEDS_FINETUNED_MODEL = ("06_", "07_", "10_")
# Collection order is the order files are handed to the workers: the longest first, so that
# neither worker is left with a long notebook at the end.
FIRST = (
    "notebooks/05_",
    "notebooks/09_",
    "notebooks/08_",
    "notebooks/06_",
    "notebooks/07_",
    "notebooks/10_",
)

if "COURSE_OFFLINE_LOG" not in os.environ:  # set once, by the controller; workers inherit it
    os.environ["COURSE_OFFLINE_LOG"] = str(
        Path(tempfile.mkdtemp(prefix="course-offline-")) / "violations.log"
    )
_OWN_ARTIFACTS = None
if "COURSE_ARTIFACTS" not in os.environ:  # likewise: one folder of models for the whole session
    _OWN_ARTIFACTS = tempfile.mkdtemp(prefix="course-test-artifacts-")
    os.environ["COURSE_ARTIFACTS"] = _OWN_ARTIFACTS


def pytest_configure(config):
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    os.environ.setdefault("COURSE_PROFILE", "quick")
    os.environ["COURSE_REUSE_MODELS"] = "1"
    os.environ["COURSE_OFFLINE_GUARD"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from course_lib.runtime.offline import install_guard

    install_guard()


def run_order(nodeid: str) -> int:
    """Position of a test's file in the run: the long notebooks first, then everything else."""
    return next((i for i, prefix in enumerate(FIRST) if nodeid.startswith(prefix)), len(FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: run_order(item.nodeid))  # stable: the order within a file stays


def prepared_finetuned_model() -> Path:
    """Lesson 05's fine-tuned model for this session: trained once (quick profile), then reused."""
    from course_lib.finetuned import finetuned_model

    return finetuned_model(progress=False)


def prepared_gpt_model() -> Path:
    """Lesson 09's decoder for this session: trained once, then reused."""
    from course_lib.gpt_train import default_folder, trained_gpt

    trained_gpt(progress=False)
    return default_folder()


@pytest.fixture(scope="session")
def finetuned_model_folder() -> Path:
    return prepared_finetuned_model()


@pytest.fixture(scope="session")
def gpt_model_folder() -> Path:
    return prepared_gpt_model()


def pytest_runtest_setup(item):
    """Before the first cell of a notebook that loads lesson 05's model, make sure it exists."""
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb" and path.name.startswith(NEEDS_FINETUNED_MODEL):
        if item.nodeid.endswith("::Cell 0"):
            prepared_finetuned_model()


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller reads the shared log and cleans up
    if _OWN_ARTIFACTS:
        shutil.rmtree(_OWN_ARTIFACTS, ignore_errors=True)
    log = Path(os.environ["COURSE_OFFLINE_LOG"])
    if log.exists() and log.read_text().strip():
        print(
            "\nOFFLINE GUARD: these network attempts were made during the tests:\n"
            + log.read_text()
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
