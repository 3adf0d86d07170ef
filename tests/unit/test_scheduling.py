"""How ``make test`` shares two workers: what must stay together, and in which order."""

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


def test_a_notebooks_cells_stay_in_one_scope():
    cells = [f"notebooks/02_multi_head_attention::ipynb::Cell {i}" for i in range(30)]
    assert {conftest.scope_of(c) for c in cells} == {"notebooks/02_multi_head_attention"}


def test_a_test_module_is_one_scope():
    ids = [
        "tests/unit/test_bert.py::test_a",
        "tests/unit/test_bert.py::TestX::test_b[case-1]",
        # a unit test parametrised by a notebook's name is not pulled into a model chain
        "tests/unit/test_bert.py::test_c[05_fine_tuning.ipynb]",
    ]
    assert {conftest.scope_of(i) for i in ids} == {"tests/unit/test_bert.py"}


def test_tests_that_reuse_lesson_05s_model_share_its_chain():
    chain = {
        conftest.scope_of(i)
        for i in (
            "notebooks/05_fine_tuning::ipynb::Cell 40",
            "notebooks/06_optimization::ipynb::Cell 2",
            "notebooks/07_deployment::ipynb::Cell 3",
            "notebooks/10_hackathon::ipynb::Cell 5",
            "tests/browser/test_demo_page.py::test_demo_page_predicts",
            "tests/browser/test_jupyterlab.py::test_notebook_in_jupyterlab[05_fine_tuning]",
        )
    }
    assert chain == {"chain:finetuned-minilm"}
    gpt = {
        conftest.scope_of(i)
        for i in (
            "notebooks/09_text_generation::ipynb::Cell 12",
            "tests/browser/test_jupyterlab.py::test_notebook_in_jupyterlab[09_text_generation]",
        )
    }
    assert gpt == {"chain:gpt-tweets"}
    # a notebook that only opens in the browser needs no model: it runs anywhere
    assert (
        conftest.scope_of("tests/browser/test_jupyterlab.py::test_notebook_in_jupyterlab[01_x]")
        == "tests/browser/test_jupyterlab.py"
    )


def test_make_test_collects_the_training_notebooks_before_the_browser_tests():
    """A chain runs in collection order, so notebooks (which train) must come before
    tests/browser (which reuse) on the pytest command line."""
    makefile = (ROOT / "Makefile").read_text()
    command = re.search(r"^test:.*\n\t(.+)$", makefile, re.M)[1]
    assert command.index(" notebooks") < command.index(" tests/browser"), command
