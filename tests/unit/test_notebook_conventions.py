"""Static checks of the committed notebooks: the conventions nbval cannot see."""

import json
import re
from pathlib import Path

import pytest

from course_lib.tooling.coursemap import LESSONS

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def _code_cells(path):
    return [
        c
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_calls_setup(path):
    assert "course_lib.setup(" in "".join(_code_cells(path)[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_top_to_bottom_without_errors(path):
    cells = _code_cells(path)
    counts = [c.get("execution_count") for c in cells]
    assert all(counts), f"{path.name}: some code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: not one fresh top-to-bottom run: {counts}"
    )
    errors = [
        i
        for i, c in enumerate(cells)
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: error outputs stored in code cells {errors}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_on_the_course_map(path):
    assert path.name in {name for name, _, _ in LESSONS}


def test_readme_course_map_matches_measured_times():
    """The README's map is pasted from ``python -m course_lib map``; it must not drift from
    timings.json."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    from course_lib.tooling.coursemap import course_map_markdown

    expected = course_map_markdown(link_prefix="notebooks/")
    assert expected in readme, (
        "README.md's course map differs from notebooks/timings.json; paste the output "
        "of `python -m course_lib map` into it:\n" + expected
    )


def test_readme_lesson_to_module_table_matches_the_notebooks():
    """The README's table of which modules each lesson imports is read off the notebooks."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    from course_lib.tooling.coursemap import modules_table_markdown

    expected = modules_table_markdown()
    assert expected in readme, (
        "README.md's lesson-to-module table differs from the notebooks' imports; paste the "
        "output of `python -m course_lib map --modules` into it:\n" + expected
    )


MACHINE_PATH = re.compile(r"(/work/|/root/|/home/\w|/tmp/|/Users/\w|[A-Z]:\\\\Users\\\\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_carry_no_warnings_and_no_machine_paths(path):
    """What a learner sees before running: no stderr (warnings), no path of anyone's machine."""
    for index, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))[:200]
                pytest.fail(f"{path.name}: code cell {index} stores stderr output: {text!r}")
            found = MACHINE_PATH.search(json.dumps(output))
            assert not found, f"{path.name}: code cell {index} shows a machine path {found[0]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_learner_cells_print_their_checks_instead_of_asserting(path):
    for index, cell in enumerate(_code_cells(path)):
        assert not re.search(r"^\s*assert\b", "".join(cell["source"]), re.M), (
            f"{path.name}: code cell {index} uses assert; print what was checked instead"
        )


def _markdown_cells(path):
    return [
        "".join(c["source"])
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "markdown"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_opens_with_objectives_and_time(path):
    first = _markdown_cells(path)[0]
    assert re.search(r"^\*\*You will be able to:\*\*\s*\n\s*(?:[-*]|\d+\.) ", first, re.M), (
        f"{path.name}: the first markdown cell must say '**You will be able to:**' and list it"
    )
    assert re.search(r"^\*\*Time:\*\* \S", first, re.M), (
        f"{path.name}: the first markdown cell must say how long the lesson takes ('**Time:**')"
    )


# The same 2-core machine has run the notebooks 35-60% faster on one day than on another.
RUN_TIME_SPREAD = 1.6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_run_time_a_lesson_announces_matches_timings_json(path):
    """The run time the opening cell announces ("runs in about N s") agrees with the last run."""
    opening = re.sub(r"\s+", " ", _markdown_cells(path)[0])
    claim = re.search(r"runs in about ([\d.]+) (s|seconds|minutes)\b", opening)
    assert claim, f"{path.name}: the opening cell does not say 'runs in about N s' (or minutes)"
    claimed = float(claim.group(1)) * (60 if claim.group(2) == "minutes" else 1)
    timings = json.loads((path.parent / "timings.json").read_text())
    measured = timings[path.name]["seconds"]
    assert 1 / RUN_TIME_SPREAD <= measured / claimed <= RUN_TIME_SPREAD, (
        f"{path.name} says it runs in about {claimed:g} s; notebooks/timings.json has "
        f"{measured:g} s: update the opening cell"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_ends_with_check_yourself_and_its_answers(path):
    last = _markdown_cells(path)[-1]
    assert last.startswith("## Check yourself"), (
        f"{path.name}: the last markdown cell must start with '## Check yourself'"
    )
    questions = re.findall(r"^(?:[-*]|\d+\.) ", last.split("<details>")[0], re.M)
    assert len(questions) >= 4, f"{path.name}: Check yourself asks {len(questions)} questions"
    assert re.search(r"<details><summary>Answers</summary>.+</details>", last, re.S), (
        f"{path.name}: the answers go in a <details><summary>Answers</summary> block"
    )


# Lesson 10 is the hackathon: the challenge is its exercise.
LESSONS_WITH_EXERCISES = [p for p in NOTEBOOKS if p.name[:2] != "10"]


@pytest.mark.parametrize("path", LESSONS_WITH_EXERCISES, ids=lambda p: p.name)
def test_lesson_has_at_least_two_exercises(path):
    cells = json.loads(path.read_text())["cells"]
    exercises = [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} exercise(s); at least 2 expected"
