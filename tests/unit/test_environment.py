"""``setup()``'s thread count: the share a test worker (or a torchrun rank) was given."""

import os

import pytest

from course_lib.runtime import environment


@pytest.mark.parametrize("value", ["", "0", "two", "-1"])
def test_without_a_usable_omp_num_threads_all_cores_up_to_four(monkeypatch, value):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert environment.default_threads() == max(1, min(4, os.cpu_count() or 1))


def test_omp_num_threads_is_honoured(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert environment.default_threads() == 3


def test_each_test_worker_got_its_share_of_the_cores():
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        pytest.skip("one process: it keeps all the cores")
    assert int(os.environ["OMP_NUM_THREADS"]) * workers <= max(workers, os.cpu_count() or 1)
