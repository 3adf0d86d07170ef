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


# ---- the three general rules of the second pass (issue 22) -------------------------------------
# 1. Learner copies carry no test machinery and no line of any answer.
# 2. A checker shows no expected value unless the learner asks for it.
# 3. Every lesson has a predict-then-run cell.

REPO = Path(__file__).resolve().parents[2]
TRIVIAL = re.compile(r"[\W_]*|else:|try:|finally:|pass|return|break|continue")


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _answer_lines(nb: dict) -> tuple[set[str], set[str]]:
    """(lines inside SOLUTION and PREDICTION blocks, every other line) of a notebook, stripped."""
    from course_lib.tooling.student import _marker

    secret, visible = set(), set()
    for cell in nb["cells"]:
        inside = False
        for line in "".join(cell["source"]).splitlines():
            marker = _marker(line) if cell["cell_type"] == "code" else None
            if marker:
                inside = marker[0] == "BEGIN"
            elif not TRIVIAL.fullmatch(line.strip()):
                (secret if inside else visible).add(line.strip())
    return secret, visible


@pytest.fixture(scope="module")
def learner_copies(tmp_path_factory) -> dict[str, dict]:
    from course_lib.tooling.student import write_student_versions

    out = tmp_path_factory.mktemp("learner")
    write_student_versions(NOTEBOOKS[0].parent, out)
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.ipynb"))}


def test_no_learner_copy_holds_a_line_of_any_answer(learner_copies):
    """Every answer line of every notebook (solutions and the instructor's predictions) is absent
    from every learner copy, unless the same line is shown outside an answer somewhere anyway."""
    secret, visible = set(), set()
    for path in NOTEBOOKS:
        hidden, shown = _answer_lines(json.loads(path.read_text()))
        secret |= hidden
        visible |= shown
    answers = secret - visible
    assert len(answers) > 50, "the notebooks' answers were not found: is the marker regex right?"
    assert sorted(learner_copies) == [p.name for p in NOTEBOOKS]
    for name, nb in learner_copies.items():
        lines = {line.strip() for c in nb["cells"] for line in "".join(c["source"]).splitlines()}
        leaked = sorted(lines & answers)
        assert not leaked, f"learner copy of {name} shows answer lines: {leaked[:5]}"


def test_no_learner_copy_carries_nbval_markers_or_outputs(learner_copies):
    for name, nb in learner_copies.items():
        for index, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            assert "NBVAL_" not in "".join(cell["source"]), f"{name} cell {index}: nbval marker"
            assert not [t for t in _tags(cell) if t.startswith("nbval-")], f"{name} cell {index}"
            assert not cell["outputs"], f"{name} cell {index} keeps its outputs"


def _checker_modules() -> list[str]:
    """Every course_lib module that builds an exercise checker on check_exercise."""
    package = REPO / "course_lib"
    return [
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in sorted(package.rglob("*.py"))
        if "check_exercise(" in path.read_text() and path.name != "exercises.py"
    ]


def _slightly_wrong(value):
    """The reference's answer, changed just enough to be wrong (of the same type and shape)."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return ~value
        return value * 1.5 + 0.25 if value.is_floating_point() else value + 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    if isinstance(value, str):
        return value + " (wrong)"
    if isinstance(value, tuple | list):
        return type(value)(_slightly_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: _slightly_wrong(v) for k, v in value.items()}
    if value is None:
        return (1,)
    raise TypeError(f"no wrong version of a {type(value).__name__}: add one here")


@pytest.mark.parametrize("module_name", _checker_modules())
def test_checkers_show_no_expected_value_unless_asked(module_name, monkeypatch, capsys):
    """Each ``check_*`` of the module is run with a candidate that returns, for every case, the
    reference's answer slightly changed (``_slightly_wrong``; it is handed to ``check_exercise``
    in place of the learner's function). The printed text must contain none of the expected
    values, except where the question itself states one (the case's description or hint);
    with ``show_answer=True`` it must contain every one."""
    import importlib
    import inspect

    from course_lib.runtime import exercises

    module = importlib.import_module(module_name)
    checkers = {
        name: fn
        for name, fn in vars(module).items()
        if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == module_name
    }
    assert checkers, f"{module_name} calls check_exercise but defines no check_* function"
    seen: list[object] = []  # the expected values of the cases run
    questions: list[str] = []  # what the cases themselves say (descriptions and hints)

    def spy(title, candidate, reference, cases, *args, **kwargs):
        # check_exercise runs the reference on a case's own arguments: reuse that answer (lesson
        # 05's checker trains a small model for each)
        answers = {}

        def key(a, k):
            return tuple(map(id, a)), tuple((name, id(v)) for name, v in sorted(k.items()))

        def remembered(*a, **k):
            answers[key(a, k)] = reference(*a, **k)
            return answers[key(a, k)]

        def wrong(*a, **k):
            found = key(a, k)
            expected = answers.pop(found) if found in answers else reference(*a, **k)
            seen.append(expected)
            return _slightly_wrong(expected)

        questions.extend(c.description + " " + c.hint for c in cases)

        return exercises.check_exercise(title, wrong, remembered, cases, *args, **kwargs)

    monkeypatch.setattr(module, "check_exercise", spy)
    for name, checker in checkers.items():
        assert "show_answer" in inspect.signature(checker).parameters, (
            f"{module_name}.{name} must take show_answer and pass it to check_exercise"
        )
        exercises.forget_tries()
        seen.clear()
        questions.clear()
        checker(lambda *a, **k: None)
        out = capsys.readouterr().out
        assert seen and "[not yet]" in out, f"{name}: the wrong candidate was not run:\n{out}"
        stated = " ".join(questions)
        answers = {exercises.format_answer(expected) for expected in seen}
        # "0", "1.5" would match any text; a value the question itself states is no give-away
        answers = {a for a in answers if len(a) >= 4 and a not in stated}
        assert answers, f"{name}: no expected value long enough to look for"
        shown = [a for a in answers if a in out]
        assert not shown, f"{name} prints expected values on a first wrong try: {shown}"

        exercises.forget_tries()
        checker(lambda *a, **k: None, show_answer=True)
        asked = capsys.readouterr().out
        missing = [a for a in answers if a not in asked]
        assert not missing, f"{name}(show_answer=True) does not show {missing}"


LESSONS_WITH_PREDICTIONS = [p for p in NOTEBOOKS if p.name[:2] != "10"]


@pytest.mark.parametrize("path", LESSONS_WITH_PREDICTIONS, ids=lambda p: p.name)
def test_lesson_has_a_predict_then_run_cell(path):
    """A cell tagged ``prediction`` (the learner's guess between BEGIN/END PREDICTION); the cells
    after it measure, and one of them, before the next section or the next prediction, compares
    the guess with the measurement (``compare_prediction``)."""
    cells = json.loads(path.read_text())["cells"]
    starts = [i for i, c in enumerate(cells) if "prediction" in _tags(c)]
    assert starts, f"{path.name}: no code cell tagged 'prediction' (predict, then run)"
    for start in starts:
        first = "".join(cells[start]["source"]).splitlines()[0]
        compared = False
        for cell in cells[start + 1 :]:
            source = "".join(cell["source"])
            if "prediction" in _tags(cell) or (
                cell["cell_type"] == "markdown" and source.lstrip().startswith("#")
            ):
                break
            if cell["cell_type"] == "code" and "compare_prediction(" in source:
                compared = True
                break
        assert compared, (
            f"{path.name}: no cell after the prediction {first!r} (before the next section) "
            f"calls compare_prediction"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_progress_bars_show_where_they_finished(path):
    """GitHub and nbconvert show a bar's stored text only: it must be the finished bar that
    ``python -m course_lib run`` stores, not the "0%" tqdm wrote when the bar appeared. A bar's
    text holds timings, so no cell whose output nbval compares may show one."""
    import nbformat

    from course_lib.tooling.progress_bars import WIDGET_VIEW, finish_progress_bars

    nb = nbformat.read(path, as_version=4)
    assert not finish_progress_bars(nb), (
        f"{path.name}: progress bars stored at their start; run `python -m course_lib run`"
    )
    for index, cell in enumerate(_code_cells(path)):
        bars = [o for o in cell.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
        assert not (bars and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"])), (
            f"{path.name}: code cell {index} shows a widget and is marked NBVAL_CHECK_OUTPUT"
        )
