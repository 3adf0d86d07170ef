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
