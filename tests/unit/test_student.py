import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.tooling import student

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_strip_solution_keeps_indentation_and_surroundings():
    src = "def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n\nprint(1)\n"
    out = student.strip_solution(src)
    assert out == f"def f(x):\n    {student.STUB}\n\nprint(1)\n"


@pytest.mark.parametrize(
    "bad",
    [
        "# BEGIN SOLUTION\nx = 1\n",
        "x = 1\n# END SOLUTION\n",
        "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n",
    ],
)
def test_strip_solution_rejects_unbalanced_markers(bad):
    with pytest.raises(ValueError):
        student.strip_solution(bad)


def test_nbgrader_style_markers_with_any_number_of_hashes_are_stripped_too():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ## END SOLUTION\n"
    assert student.strip_solution(src) == f"def f(x):\n    {student.STUB}\n"


def _cell(source: str, tags=()) -> dict:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = list(tags)
    return cell


def _notebook(*cells) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A lesson"), *cells]
    return json.loads(nbformat.writes(nb))


@pytest.mark.parametrize(
    "cell, message",
    [
        (_cell("### BEGIN SOLUTION\nx = 42\n### END SOLUTION"), "not tagged 'solution'"),
        (_cell("# BEGIN PREDICTION\nx = 3\n# END PREDICTION"), "not tagged 'prediction'"),
        (_cell("x = 42", ["solution"]), "tagged 'solution' but has no '# BEGIN SOLUTION'"),
        (_cell("x = 3", ["prediction"]), "tagged 'prediction' but has no '# BEGIN PREDICTION'"),
        (
            _cell("# BEGIN PREDICTION\nprint(3)\n# END PREDICTION", ["prediction"]),
            "one `name = value` per line",
        ),
        (_cell("# BEGIN SOLUTION\nx = 42", ["solution"]), "without '# END SOLUTION'"),
    ],
)
def test_a_marker_without_its_tag_or_a_tag_without_markers_stops_the_build(cell, message):
    with pytest.raises(ValueError) as refused:
        student.student_notebook(_notebook(cell), "07_lesson.ipynb")
    text = str(refused.value)
    assert text.startswith("07_lesson.ipynb, cell 1 (") and message in text, text


def test_predictions_become_empty_guesses_and_nbval_markers_go():
    guess = _cell(
        "# Before you run the next cell:\n# BEGIN PREDICTION\npredicted_share = 0.3  # a third?\n"
        "    predicted_shape = (2, 5)\n\n# END PREDICTION\nprint('saved')",
        ["prediction"],
    )
    checked = _cell("# NBVAL_CHECK_OUTPUT\nprint(1)\n  #  NBVAL_IGNORE_OUTPUT \nprint(2)")
    tagged = _cell("print(3)", ["nbval-ignore-output", "widget"])
    nb = student.student_notebook(_notebook(guess, checked, tagged), "00_x.ipynb")
    assert nb["cells"][1]["source"] == (
        "# Before you run the next cell:\npredicted_share = ...  # your prediction\n"
        "    predicted_shape = ...  # your prediction\nprint('saved')"
    )
    assert nb["cells"][2]["source"] == "print(1)\nprint(2)"
    assert nb["cells"][3]["metadata"]["tags"] == ["widget"]


def test_every_solution_cell_has_markers_and_is_followed_by_a_checker():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if "solution" in cell.get("metadata", {}).get("tags", []):
                assert "# BEGIN SOLUTION" in "".join(cell["source"]), f"{path.name} cell {i}"
                following = "".join(cells[i + 1]["source"])
                assert "check_" in following, f"{path.name} cell {i + 1} should call a checker"


def test_student_version_of_lesson_01_hides_answers_and_still_runs(tmp_path):
    src = NOTEBOOKS / "01_attention.ipynb"
    nb = student.student_notebook(json.loads(src.read_text()))
    text = json.dumps(nb)
    assert "x.amax(dim=dim, keepdim=True)" not in text and "torch.tril(torch.ones" not in text
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    node = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(
        node, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(
        o.get("text", "") for c in node.cells if c.cell_type == "code" for o in c.outputs
    )
    assert printed.count("[skipped]") == 2 and "not solved yet" in printed


# ----------------------------------------------------------------- learner copies keep edits

REPO = NOTEBOOKS.parent


def _fake_lesson(folder: Path, name: str, answer: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A lesson"),
        nbformat.v4.new_code_cell(f"# BEGIN SOLUTION\n{answer}\n# END SOLUTION"),
    ]
    nb.cells[1].metadata["tags"] = ["solution"]
    path = folder / name
    nbformat.write(nb, path)
    return path


def _actions(results) -> dict:
    return {r.path.name: r.action for r in results}


def test_learner_build_writes_stubs_and_ignores_itself(tmp_path):
    src, out = tmp_path / "notebooks", tmp_path / "learner"
    src.mkdir()
    _fake_lesson(src, "01_a.ipynb", "x = 42")
    assert _actions(student.write_student_versions(src, out)) == {"01_a.ipynb": "written"}
    text = (out / "01_a.ipynb").read_text()
    assert "x = 42" not in text and "NotImplementedError" in text
    assert (out / ".gitignore").read_text().splitlines()[-1] == "*"


def test_unedited_copy_follows_the_lesson_and_edited_copy_is_kept(tmp_path):
    src, out = tmp_path / "notebooks", tmp_path / "learner"
    src.mkdir()
    _fake_lesson(src, "01_a.ipynb", "x = 1")
    _fake_lesson(src, "02_b.ipynb", "y = 1")
    student.write_student_versions(src, out)
    again = student.write_student_versions(src, out)
    assert _actions(again) == {"01_a.ipynb": "unchanged", "02_b.ipynb": "unchanged"}

    edited = out / "02_b.ipynb"
    mine = edited.read_text().replace("raise NotImplementedError", "y = 'my answer'  # ")
    edited.write_text(mine)
    # Lesson unchanged: the edit is kept and nothing is written beside it.
    assert _actions(student.write_student_versions(src, out))["02_b.ipynb"] == "kept"
    assert edited.read_text() == mine and not (out / "02_b.new.ipynb").exists()

    # Both lessons change: the untouched copy is updated, the edited one kept with a new one beside.
    (src / "01_a.ipynb").write_text((src / "01_a.ipynb").read_text().replace("A lesson", "Better"))
    (src / "02_b.ipynb").write_text((src / "02_b.ipynb").read_text().replace("A lesson", "Better"))
    results = student.write_student_versions(src, out)
    assert _actions(results) == {"01_a.ipynb": "updated", "02_b.ipynb": "kept+new"}
    assert "Better" in (out / "01_a.ipynb").read_text()
    assert edited.read_text() == mine
    assert "Better" in (out / "02_b.new.ipynb").read_text()
    described = [r.describe() for r in results]
    assert "02_b.new.ipynb" in described[1] and "KEPT" in described[1]


def test_copy_of_unknown_origin_is_never_overwritten(tmp_path):
    src, out = tmp_path / "notebooks", tmp_path / "learner"
    src.mkdir()
    out.mkdir()
    _fake_lesson(src, "01_a.ipynb", "x = 1")
    (out / "01_a.ipynb").write_text("my own notes")  # no manifest entry: treat as the learner's
    assert _actions(student.write_student_versions(src, out)) == {"01_a.ipynb": "kept+new"}
    assert (out / "01_a.ipynb").read_text() == "my own notes"


def test_make_lab_builds_learner_copies_and_an_edit_survives_a_second_run(tmp_path):
    """`make lab` runs `python -m course_lib lab`; its build step, run twice, keeps the edit."""
    import shutil
    import subprocess

    if shutil.which("make"):
        dry = subprocess.run(
            ["make", "-n", "-C", str(REPO), "lab", "STAMP=Makefile"],
            capture_output=True,
            text=True,
        ).stdout
        assert "-m course_lib lab" in dry, dry
    from course_lib.__main__ import main

    out = tmp_path / "learner"
    assert main(["lab", "--build-only", "--out", str(out)]) == 0
    lesson = out / "01_attention.ipynb"
    nb = json.loads(lesson.read_text())
    nb["cells"][0]["source"] = "# My notes: softmax is a soft argmax\n"
    lesson.write_text(json.dumps(nb))
    assert main(["lab", "--build-only", "--out", str(out)]) == 0
    assert "My notes" in lesson.read_text()
    assert not (out / "01_attention.new.ipynb").exists()  # the lesson itself did not change


def test_lab_command_allows_root_only_when_root():
    as_root = student.lab_command("00_welcome.ipynb", as_root=True)
    assert as_root[-1] == "--allow-root" and as_root[1:4] == ["-m", "jupyter", "lab"]
    assert "--allow-root" not in student.lab_command("00_welcome.ipynb", as_root=False)


def test_lab_as_root_warns_and_starts_with_allow_root(tmp_path, monkeypatch, capsys):
    started = {}

    class Done:
        returncode = 0

    def fake_run(command, cwd):
        started.update(command=command, cwd=cwd)
        return Done()

    monkeypatch.setattr(student, "running_as_root", lambda: True)
    monkeypatch.setattr("subprocess.run", fake_run)
    assert student.lab_main(["--out", str(tmp_path / "learner")]) == 0
    assert "--allow-root" in started["command"] and started["cwd"] == tmp_path / "learner"
    assert "00_welcome.ipynb" in started["command"]
    assert "running as root" in capsys.readouterr().err
