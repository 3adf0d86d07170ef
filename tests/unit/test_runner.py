import asyncio
import json

import nbformat
import pytest
from jupyter_core.utils import run_sync

from course_lib.tooling import runner


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_describe_cell_names_index_type_and_first_line():
    cell = nbformat.v4.new_code_cell("\n\nmodel = train(data)  # a long comment " + "x" * 80)
    text = runner.describe_cell(7, cell)
    assert text.startswith("cell 7 (code: 'model = train(data)") and text.endswith("...')")


class _StuckClient:
    """Like nbclient after the widget hang: the kernel is idle, the reply never comes."""

    code_cells_executed = 0

    def __init__(self):
        self.started = []

    async def async_execute_cell(self, cell, index, execution_count=None):
        self.started.append(index)
        if "hang" in cell.source:
            await asyncio.Event().wait()


def test_a_hang_becomes_a_failure_that_names_the_cell(monkeypatch):
    monkeypatch.setattr(runner, "HANG_GRACE", 0.2)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(1)"), nbformat.v4.new_code_cell("w  # hang here")]
    nb.cells.append(nbformat.v4.new_code_cell("never reached"))
    client = _StuckClient()
    with pytest.raises(
        runner.CellFailure,
        match=r"cell 1 \(code: 'w  # hang here'\) hung: no reply from nbclient after 0.3 s",
    ):
        # In a full run an earlier test on this worker (Playwright's sync API) can leave an event
        # loop running in this thread; run_sync then runs ours in a thread of its own.
        run_sync(asyncio.wait_for)(runner.execute_cells(client, nb, cell_timeout=0.1), 10)
    assert client.started == [0, 1]


@pytest.mark.subprocess
def test_clean_run_writes_outputs_and_error_names_the_cell(tmp_path):
    good = _notebook(tmp_path / "01_good.ipynb", "x = 6 * 7", "print(x)")
    bad = _notebook(tmp_path / "02_bad.ipynb", "print('fine')", "1 / 0", "print('after')")
    before = bad.read_text()
    result, _ = runner.run_notebook(good, cell_timeout=60)
    assert result.ok and result.failure == ""
    outputs = nbformat.read(good, as_version=4).cells[2].outputs
    assert outputs[0]["text"] == "42\n"

    result, _ = runner.run_notebook(bad, cell_timeout=60)
    assert not result.ok
    assert "cell 2 (code: '1 / 0')" in result.failure and "ZeroDivisionError" in result.failure
    assert bad.read_text() == before  # a failed run leaves the file alone


@pytest.mark.subprocess
def test_cell_past_its_time_limit_fails_with_its_name_and_the_next_notebook_still_runs(
    tmp_path, capsys
):
    slow = _notebook(tmp_path / "01_slow.ipynb", "import time", "time.sleep(60)")
    quick = _notebook(tmp_path / "02_quick.ipynb", "print('quick')")
    status = runner.main(
        [
            str(slow),
            str(quick),
            "--timeout",
            "3",
            "--no-write",
            "--html",
            "--html-dir",
            str(tmp_path / "html"),
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "01_slow.ipynb" in out and "cell 2 (code: 'time.sleep(60)') ran past the 3 s" in out
    assert "02_quick.ipynb: " in out and "| **total** |" in out and "1 ok, 1 failed" in out
    assert nbformat.read(quick, as_version=4).cells[1].outputs == []  # --no-write
    html = tmp_path / "html" / "02_quick.html"
    assert html.is_file() and "quick" in html.read_text()


def test_timing_table_and_recorded_timings(tmp_path):
    results = [
        runner.RunResult("01_a.ipynb", 2.04, True),
        runner.RunResult("00_b.ipynb", 1.0, False, "boom"),
    ]
    table = runner.timing_table(results)
    assert "| 01_a.ipynb | 2.0 | ok |" in table and "| 00_b.ipynb | 1.0 | FAIL: boom |" in table
    assert "| **total** | 3.0 | 1 ok, 1 failed |" in table
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps({"05_x.ipynb": {"seconds": 9.0, "cores": 2, "measured": "x"}}))
    runner.record_timing(results[0], timings)
    saved = json.loads(timings.read_text())
    assert list(saved) == ["01_a.ipynb", "05_x.ipynb"] and saved["01_a.ipynb"]["seconds"] == 2.0


def test_the_stored_outputs_are_written_under_the_full_profile_only(tmp_path, capsys):
    nb = _notebook(tmp_path / "01_a.ipynb", "print(1)")
    with pytest.raises(SystemExit):
        runner.main([str(nb), "--profile", "quick"])
    assert "--profile quick needs --no-write" in capsys.readouterr().err


def test_run_rejects_a_missing_notebook(tmp_path, capsys):
    with pytest.raises(SystemExit):
        runner.main([str(tmp_path / "nope.ipynb")])
    assert "no such notebook" in capsys.readouterr().err


def test_help_lists_every_verb_and_every_verb_resolves(capsys):
    import importlib

    from course_lib.__main__ import VERBS, main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for verb in [
        "doctor",
        "student",
        "serve",
        "map",
        "lab",
        "run",
        "agenda",
        "pack-model",
        "bundle",
    ]:
        assert verb in VERBS and f"\n  {verb} " in text
    for verb, (module, function, _) in VERBS.items():
        assert callable(getattr(importlib.import_module(module), function)), verb
    assert main(["no-such-verb"]) == 2
    assert "unknown verb 'no-such-verb'" in capsys.readouterr().err
