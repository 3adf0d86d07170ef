"""How ``make test`` shares two workers: which tests stay together, and in which order the files
are handed out."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _root_conftest():
    # Loaded by path: in a full run, ``import conftest`` can find tests/browser/conftest.py.
    spec = importlib.util.spec_from_file_location("course_root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conftest = _root_conftest()


def test_the_long_notebooks_are_handed_out_first_and_the_rest_keep_their_order():
    ids = [
        "tests/unit/test_attention.py::test_a",
        "notebooks/01_attention.ipynb::Cell 0",
        "notebooks/09_text_generation.ipynb::Cell 0",
        "notebooks/05_fine_tuning.ipynb::Cell 0",
        "tests/browser/test_jupyterlab.py::test_notebook_in_jupyterlab[05_fine_tuning]",
    ]
    ordered = sorted(ids, key=conftest.run_order)
    assert ordered[:2] == ids[3:1:-1]  # 05 before 09
    assert ordered[2:] == [ids[0], ids[1], ids[4]]


def test_make_test_uses_xdists_documented_file_distribution_and_the_quick_profile():
    makefile = (ROOT / "Makefile").read_text()
    # loadfile: a notebook's cells (nbval node ids "notebooks/NN_x::ipynb::Cell k") and a test
    # module's tests stay on one worker; files go out in the order conftest.py sets
    assert re.search(
        r"^PYTEST_FLAGS \?= -n 2 --dist loadfile --no-loadscope-reorder$", makefile, re.M
    )
    command = re.search(r"^test:.*\n\t(.+)$", makefile, re.M)[1]
    assert command.startswith("COURSE_PROFILE=quick ")
    full = re.search(r"^test-full:.*\n\t(.+)$", makefile, re.M)[1]
    assert full == command.replace("COURSE_PROFILE=quick", "COURSE_PROFILE=full")
    assert "_split_scope" not in (ROOT / "conftest.py").read_text()  # no private xdist API


def test_pytests_cache_is_on_so_that_last_failed_works():
    assert "no:cacheprovider" not in (ROOT / "pyproject.toml").read_text()
