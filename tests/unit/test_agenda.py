import json
import re

import nbformat
import pytest

from course_lib.settings import NOTEBOOKS_DIR
from course_lib.tooling import agenda


def _lesson(folder, name, minutes=None, optional=(), heading="# 05 · A title"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(heading + "\n\ntext")]
    if minutes is not None:
        nb.metadata["course"] = {"learner_minutes": minutes, "optional": list(optional)}
    nbformat.write(nb, folder / name)


def _timings(folder, **seconds):
    data = {f"{k}.ipynb": {"seconds": v, "cores": 2, "measured": "x"} for k, v in seconds.items()}
    (folder / "timings.json").write_text(json.dumps(data))


def test_block_is_learner_plus_compute_rounded_up_to_five_minutes():
    assert agenda.Lesson("a", "A", 40, 130.0).minutes == 45  # 40 + 2.2 -> 45
    assert agenda.Lesson("a", "A", 40, None).minutes == 40
    assert agenda.Lesson("a", "A", 41, 0.0).minutes == 45


def test_schedule_puts_breaks_and_lunch_between_lessons():
    lessons = [agenda.Lesson(f"0{i}_x.ipynb", f"L{i}", 55, 0) for i in range(6)]
    slots = agenda.schedule(lessons, agenda.parse_clock("09:00"))
    plan = [(agenda.clock(s.start), s.what) for s in slots]
    assert plan[:3] == [("09:00", "L0"), ("09:55", "L1"), ("10:50", "Break")]
    assert ("12:00", "Lunch") in plan
    lunch = plan.index(("12:00", "Lunch"))
    assert plan[lunch + 1] == ("13:00", "L3") and plan[-1][1] == "End of day"
    # no two lessons back to back for more than 90 minutes without a pause
    run = 0
    for s in slots:
        run = run + s.minutes if s.lesson else 0
        assert run <= 90 + 55


def test_a_long_track_continues_on_a_second_day():
    lessons = [agenda.Lesson(f"{i:02d}_x.ipynb", f"L{i}", 85, 0) for i in range(8)]
    slots = agenda.schedule(lessons, agenda.parse_clock("09:00"), agenda.parse_clock("17:30"))
    assert max(s.day for s in slots) == 2
    assert all(s.start + s.minutes <= 17 * 60 + 30 for s in slots)
    day2 = [s for s in slots if s.day == 2]
    assert agenda.clock(day2[0].start) == "09:00" and day2[0].lesson is not None


def test_markdown_marks_optional_sections_flags_missing_estimates_and_tracks(tmp_path):
    _lesson(tmp_path, "00_w.ipynb", 15, heading="# 00 · Welcome here")
    _lesson(tmp_path, "05_f.ipynb", 60, ["8. The FULL setting"])
    _lesson(tmp_path, "08_s.ipynb")  # no estimate yet
    _timings(tmp_path, **{"00_w": 5.0, "05_f": 207.0})
    core = agenda.agenda_markdown(tmp_path, "08:30", "core")
    assert "| 08:30 | 00 Welcome here | 20 |" in core
    assert "05 · A title" not in core  # the "NN ·" prefix is stripped
    assert re.search(r"\| 08:50 \| 05 A title \| 65 \| learner 60 \+ compute 3.5 min", core)
    assert "skip when late: *8. The FULL setting*" in core and "08_s" not in core
    full = agenda.agenda_markdown(tmp_path, "08:30", "full")
    assert "08 A title" in full and "no estimate!" in full and "compute not measured" in full
    assert "No learner-time estimate in 08_s.ipynb: 30 min assumed." in full


@pytest.mark.parametrize("bad", ["9", "25:00", "09:61", "nine"])
def test_bad_clock_is_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="like 09:00"):
        agenda.parse_clock(bad)


def test_every_lesson_carries_an_estimate_and_optional_sections_that_exist():
    total = 0
    for path in sorted(NOTEBOOKS_DIR.glob("0[0-7]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        course = nb["metadata"]["course"]
        assert isinstance(course["learner_minutes"], int) and 5 <= course["learner_minutes"] <= 120
        headings = {
            line.lstrip("#").strip()
            for c in nb["cells"]
            if c["cell_type"] == "markdown"
            for line in "".join(c["source"]).splitlines()
            if line.startswith("#")
        }
        for title in course["optional"]:
            assert title in headings, f"{path.name}: optional section {title!r} is not a heading"
        total += course["learner_minutes"]
    # The course's budget for 00-07 is "roughly 6-7 hours" of reading and exercises; 5% either
    # side is the "roughly" (the estimates are whole minutes per lesson, summed over 8 lessons).
    assert 0.95 * 6 * 60 <= total <= 1.05 * 7 * 60, f"00-07 add up to {total} min of learner time"


def test_real_agenda_fits_one_day_and_uses_the_measured_times(capsys):
    assert agenda.main([]) == 0  # the default day: 08:30 to 17:30
    text = capsys.readouterr().out
    timings = json.loads((NOTEBOOKS_DIR / "timings.json").read_text())
    assert f"compute {timings['05_fine_tuning.ipynb']['seconds'] / 60:.1f} min" in text
    assert "Day 2" not in text and "**Lunch**" in text and "**Break**" in text


def test_the_guide_shows_the_agenda_as_printed_from_timings_json():
    """docs/instructor.md pastes `python -m course_lib agenda`; it must not drift from the data."""
    table = [
        line
        for line in agenda.agenda_markdown(NOTEBOOKS_DIR, agenda.DEFAULT_START, "core").splitlines()
        if line.startswith("|")
    ]
    guide = (NOTEBOOKS_DIR.parent / "docs" / "instructor.md").read_text().splitlines()
    start = guide.index(table[0])
    assert guide[start : start + len(table)] == table, (
        "docs/instructor.md's agenda differs from `python -m course_lib agenda`: paste it again"
    )


def test_full_track_opens_with_setup_and_ends_with_the_competition(tmp_path):
    for k in range(5):  # day 1 is full after four of them; 04 and 10 open day 2
        _lesson(tmp_path, f"0{k}_x.ipynb", 85, heading=f"# 0{k} · Lesson {k}")
    _lesson(tmp_path, "10_h.ipynb", 65, heading="# 10 · The hackathon")
    text = agenda.agenda_markdown(tmp_path, "08:30", "full", teams=9, hackathon_hours=3.5)
    day1, day2 = text.split("## Day 2")
    assert "## Day 3" not in text
    assert day1.split("| --- | --- | ---: | --- |\n")[1].startswith("| 08:30 | **Setup** | 45 |")
    rows = [line.split(" | ") for line in day2.splitlines() if line.startswith("| ")][2:]
    blocks = [(r[1].strip("*"), int(r[2]) if r[2] else 0) for r in rows]
    names = [b for b, _ in blocks]
    # lunch before the hackathon, never inside it; the demos and the judging follow it
    assert names[names.index("Hackathon") - 1] == "Lunch"
    assert names[names.index("Hackathon") :] == ["Hackathon", "Demos", "Judging", "End of day"]
    assert dict(blocks)["Hackathon"] == 210 and dict(blocks)["Demos"] == 9 * (3 + 1)
    assert dict(blocks)["Judging"] == agenda.JUDGING_MINUTES
    core = agenda.agenda_markdown(tmp_path, "08:30", "core")
    assert "Setup" not in core and "**Hackathon**" not in core


def test_the_competition_may_run_past_the_day_end_and_the_agenda_says_so(tmp_path):
    _lesson(tmp_path, "10_h.ipynb", 30, heading="# 10 · The hackathon")
    text = agenda.agenda_markdown(tmp_path, "08:30", "full", "13:00", teams=10)
    assert "ends at" in text and "after --day-end 13:00" in text
    with pytest.raises(ValueError, match="at least one team"):
        agenda.competition_blocks(teams=0)
    with pytest.raises(ValueError, match="at most 12 hours"):
        agenda.competition_blocks(hackathon_hours=0)


def test_the_guide_and_lesson_10_plan_the_hackathon_as_the_agenda_does():
    """docs/instructor.md pastes day 2 of `agenda --track full`; lesson 10's playbook and brief
    give the same hackathon length and demo minutes."""
    text = agenda.agenda_markdown(NOTEBOOKS_DIR, agenda.DEFAULT_START, "full")
    day2 = [line for line in text.split("## Day 2")[1].splitlines() if line.startswith("|")]
    guide = (NOTEBOOKS_DIR.parent / "docs" / "instructor.md").read_text().splitlines()
    start = guide.index(day2[0], guide.index("### The two-day plan, with the hackathon"))
    assert guide[start : start + len(day2)] == day2, (
        "docs/instructor.md's two-day plan differs from `python -m course_lib agenda --track "
        "full`: paste day 2 again"
    )
    lesson = json.loads((NOTEBOOKS_DIR / "10_hackathon.ipynb").read_text(encoding="utf-8"))
    prose = " ".join("".join(c["source"]) for c in lesson["cells"] if c["cell_type"] == "markdown")
    prose = re.sub(r"\s+", " ", prose)
    assert f"{agenda.HACKATHON_HOURS:g} hours on the agenda" in prose
    assert f"the {agenda.HACKATHON_HOURS:g}-hour block of the agenda" in prose
    assert (
        f"{agenda.DEMO_MINUTES} minutes per team and {agenda.CHANGEOVER_MINUTES} to change over"
        in prose
    )


def test_a_competition_a_little_late_stays_on_the_lessons_day(tmp_path):
    """Lessons that end at noon, then lunch and a competition ending up to FINALE_OVERRUN past the
    day end: the same day, with the warning; later than that, a day of its own."""
    _lesson(tmp_path, "09_x.ipynb", 135, heading="# 09 · Lesson")  # after setup; a break
    _lesson(tmp_path, "10_h.ipynb", 25, heading="# 10 · The hackathon")  # ends 12:10
    text = agenda.agenda_markdown(tmp_path, "08:30", "full", teams=8)
    assert "## Day 2" not in text and "after --day-end 17:30" in text
    much_later = agenda.agenda_markdown(tmp_path, "08:30", "full", teams=8, hackathon_hours=5)
    assert "## Day 2" in much_later
