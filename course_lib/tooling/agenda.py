"""The day's clock agenda, in Markdown to print: lessons, breaks and lunch, optional sections.

    python -m course_lib agenda [--start 08:30] [--track core|full] [--teams N]
                                [--hackathon-hours H]

Each lesson block lasts the learner time (reading plus exercises, the instructor's estimate kept
in the notebook's metadata ``course.learner_minutes``, reasoned in docs/instructor.md) plus the
compute time measured by ``python -m course_lib run`` (``notebooks/timings.json``), rounded up to
5 minutes. ``course.optional`` lists the sections an instructor may skip when late.

Tracks: ``core`` is the one-day spine, lessons 00-07; ``full`` is every lesson that exists
(08 scaling out, 09 text generation, 10 the hackathon's brief), spread over as many days as it
needs, and the competition itself: a 45-minute **setup** slot opens day 1 (installs fail, and
this is when they are fixed), and after lesson 10 come the **hackathon** (``--hackathon-hours``,
4 by default), the **demos** (``--teams`` x (3 minutes + 1 to change over)) and the **judging**,
together on one day, after lunch. Breaks: 15 minutes when 90 minutes have passed without one,
lunch (60 minutes) at the first block boundary after 12:00 (or before the hackathon), a new day
when the next block would end after ``--day-end``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import NOTEBOOKS_DIR

CORE_LAST_LESSON = 7
DEFAULT_LEARNER_MINUTES = 30  # used (and flagged) when a notebook carries no estimate
BREAK_AFTER, BREAK_MINUTES = 90, 15
LUNCH_AT, LUNCH_MINUTES = 12 * 60, 60
FINALE_OVERRUN = 30  # minutes
# The core track (00-07) is about 7 hours of learner time: with lunch and breaks that is a day
# from 08:30 to 17:30 (from 09:00 it ends at 18:00).
DEFAULT_START, DEFAULT_DAY_END = "08:30", "17:30"
# The full track's competition (docs/instructor.md, "Running the hackathon"; lesson 10's plan).
SETUP_MINUTES = 45
HACKATHON_HOURS = 4.0
DEFAULT_TEAMS = 8
DEMO_MINUTES, CHANGEOVER_MINUTES = 3, 1
JUDGING_MINUTES = 15


@dataclass
class Lesson:
    name: str  # file name, e.g. "05_fine_tuning.ipynb"
    title: str
    learner_minutes: int
    compute_seconds: float | None  # None: never measured
    optional: list[str] = field(default_factory=list)
    estimated: bool = True  # False: no learner_minutes in the metadata, default used

    @property
    def minutes(self) -> int:
        """Block length: learner time plus compute time, rounded up to 5 minutes."""
        compute = (self.compute_seconds or 0) / 60
        return int(math.ceil((self.learner_minutes + compute) / 5) * 5)


def _title(nb: dict, name: str) -> str:
    """The lesson's short title from the course map, else the notebook's first heading (without
    its ``#``s and ``NN ·`` number)."""
    from .coursemap import LESSONS

    short = {file: title for file, title, _ in LESSONS}
    if name in short:
        return short[name]
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for line in text.splitlines():
                if line.startswith("#"):
                    return re.sub(r"^\d\d\s*·\s*", "", line.lstrip("#").strip())
    return name


def read_lessons(folder: Path = NOTEBOOKS_DIR, track: str = "core") -> list[Lesson]:
    """The lessons of ``track`` in order, from the notebooks' metadata and ``timings.json``."""
    if track not in ("core", "full"):
        raise ValueError(f"track must be 'core' or 'full', got {track!r}")
    timings_file = folder / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    lessons = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        if track == "core" and int(path.name[:2]) > CORE_LAST_LESSON:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        course = nb.get("metadata", {}).get("course", {})
        minutes = course.get("learner_minutes")
        measured = timings.get(path.name, {}).get("seconds")
        lessons.append(
            Lesson(
                name=path.name,
                title=_title(nb, path.name),
                learner_minutes=int(minutes) if minutes is not None else DEFAULT_LEARNER_MINUTES,
                compute_seconds=measured,
                optional=list(course.get("optional", [])),
                estimated=minutes is not None,
            )
        )
    return lessons


@dataclass
class Slot:
    day: int
    start: int  # minutes after midnight
    minutes: int
    what: str
    lesson: Lesson | None = None
    notes: str = ""


@dataclass
class Block:
    """A block that is not a lesson: the setup slot, the hackathon, the demos, the judging."""

    what: str
    minutes: int
    notes: str = ""


def competition_blocks(
    hackathon_hours: float = HACKATHON_HOURS, teams: int = DEFAULT_TEAMS
) -> list[Block]:
    """The hackathon, the demos and the judging, in that order."""
    if not 0 < hackathon_hours <= 12:
        raise ValueError(
            f"the hackathon lasts more than 0 and at most 12 hours, not {hackathon_hours}"
        )
    if teams < 1:
        raise ValueError(f"expected at least one team, got {teams}")
    per_team = DEMO_MINUTES + CHANGEOVER_MINUTES
    return [
        Block(
            "Hackathon",
            int(round(hackathon_hours * 60)),
            "lesson 10's playbook; submissions to `python -m course_lib hackathon serve`",
        ),
        Block(
            "Demos",
            teams * per_team,
            f"{teams} teams x ({DEMO_MINUTES} min + {CHANGEOVER_MINUTES} to change over)",
        ),
        Block("Judging", JUDGING_MINUTES, "the jury confers (rubric in lesson 10); final reveal"),
    ]


def parse_clock(text: str) -> int:
    """``"09:30"`` -> 570 (minutes after midnight)."""
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"expected a time like 09:00, got {text!r}") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"expected a time like 09:00, got {text!r}")
    return hours * 60 + minutes


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def schedule(
    lessons: list[Lesson],
    start: int,
    day_end: int = 17 * 60 + 30,
    setup: Block | None = None,
    finale: list[Block] | None = None,
) -> list[Slot]:
    """Lay the lessons out on the clock with breaks, lunch and, when needed, more days; ``setup``
    opens day 1, and the ``finale`` blocks (the competition) follow the lessons together on one
    day: lunch first when the hackathon would start in the hour before it, else after the
    hackathon if that runs past noon (they may run past ``day_end``: ``agenda_markdown`` says
    so)."""
    slots, day, now = [], 1, start
    since_break, had_lunch = 0, False
    if setup is not None:
        slots.append(Slot(day, now, setup.minutes, setup.what, notes=setup.notes))
        now += setup.minutes
        since_break += setup.minutes
    for lesson in lessons:
        if not had_lunch and now >= LUNCH_AT:
            pause = ("Lunch", LUNCH_MINUTES)
        elif since_break >= BREAK_AFTER:
            pause = ("Break", BREAK_MINUTES)
        else:
            pause = None
        needed = lesson.minutes + (pause[1] if pause else 0)
        if now + needed > day_end and now > start:
            slots.append(Slot(day, now, 0, "End of day"))
            day, now, since_break, had_lunch, pause = day + 1, start, 0, False, None
        if pause:
            slots.append(Slot(day, now, pause[1], pause[0]))
            now, since_break = now + pause[1], 0
            had_lunch = had_lunch or pause[0] == "Lunch"
        slots.append(Slot(day, now, lesson.minutes, lesson.title, lesson))
        now += lesson.minutes
        since_break += lesson.minutes
    if finale:
        total = sum(b.minutes for b in finale) + (0 if had_lunch else LUNCH_MINUTES)
        # A competition that would end up to FINALE_OVERRUN late stays on the lessons' day (the
        # agenda says so and how to fit it); later than that, it gets a day of its own.
        if now + total > day_end + FINALE_OVERRUN and now > start and now >= LUNCH_AT:
            slots.append(Slot(day, now, 0, "End of day"))
            day, now, had_lunch = day + 1, start, False
        lunch_first = not had_lunch and now >= LUNCH_AT - LUNCH_MINUTES
        if lunch_first:  # a hackathon does not start just before lunch: eat first
            slots.append(Slot(day, now, LUNCH_MINUTES, "Lunch"))
            now, had_lunch = now + LUNCH_MINUTES, True
        for k, block in enumerate(finale):
            slots.append(Slot(day, now, block.minutes, block.what, notes=block.notes))
            now += block.minutes
            if k == 0 and not had_lunch and now > LUNCH_AT:  # a morning hackathon: lunch after
                slots.append(Slot(day, now, LUNCH_MINUTES, "Lunch"))
                now, had_lunch = now + LUNCH_MINUTES, True
    slots.append(Slot(day, now, 0, "End of day"))
    return slots


def _notes(lesson: Lesson) -> str:
    compute = (
        f"compute {lesson.compute_seconds / 60:.1f}"
        if lesson.compute_seconds is not None
        else "compute not measured"
    )
    learner = f"learner {lesson.learner_minutes}" + ("" if lesson.estimated else " (no estimate!)")
    parts = [f"{learner} + {compute} min"]
    if lesson.optional:
        parts.append("skip when late: " + "; ".join(f"*{o}*" for o in lesson.optional))
    return ". ".join(parts)


def agenda_markdown(
    folder: Path = NOTEBOOKS_DIR,
    start: str = DEFAULT_START,
    track: str = "core",
    day_end: str = DEFAULT_DAY_END,
    teams: int = DEFAULT_TEAMS,
    hackathon_hours: float = HACKATHON_HOURS,
) -> str:
    """The agenda as a Markdown document (one table per day). The full track adds the setup
    slot and the competition (``competition_blocks``)."""
    lessons = read_lessons(folder, track)
    if not lessons:
        raise ValueError(f"no lesson notebooks (NN_name.ipynb) in {folder}")
    full = track == "full"
    setup = (
        Block("Setup", SETUP_MINUTES, "every laptop: `make lab` and the doctor") if full else None
    )
    finale = competition_blocks(hackathon_hours, teams) if full else None
    slots = schedule(lessons, parse_clock(start), parse_clock(day_end), setup, finale)
    days = max(s.day for s in slots)
    out = [f"# Agenda ({track} track: lessons {lessons[0].name[:2]}-{lessons[-1].name[:2]})", ""]
    for day in range(1, days + 1):
        if days > 1:
            out += [f"## Day {day}", ""]
        out += ["| time | block | min | notes |", "| --- | --- | ---: | --- |"]
        for s in (s for s in slots if s.day == day):
            if s.lesson is not None:
                name = f"{s.lesson.name[:2]} {s.what}"
                out.append(f"| {clock(s.start)} | {name} | {s.minutes} | {_notes(s.lesson)} |")
            else:
                notes = f" {s.notes} " if s.notes else " "
                out.append(f"| {clock(s.start)} | **{s.what}** | {s.minutes or ''} |{notes}|")
        out.append("")
    late = [s for s in slots if s.what == "End of day" and s.start > parse_clock(day_end)]
    for s in late:
        out.append(
            f"Day {s.day} ends at {clock(s.start)}, after --day-end {day_end}: shorten the "
            f"hackathon (--hackathon-hours), plan fewer demos (--teams), or start earlier.\n"
        )
    measured = [x for x in lessons if x.compute_seconds is not None]
    out.append(
        f"Block = learner time (estimate in each notebook's metadata, reasons in "
        f"docs/instructor.md) + measured compute time ({len(measured)} of {len(lessons)} "
        f"notebooks measured, `notebooks/timings.json`), rounded up to 5 min. Slower laptops "
        f"need more compute time: hand out the packed model (`python -m course_lib pack-model`)."
    )
    missing = [x.name for x in lessons if not x.estimated]
    if missing:
        out.append(
            f"\nNo learner-time estimate in {', '.join(missing)}: "
            f"{DEFAULT_LEARNER_MINUTES} min assumed."
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib agenda", description="Print the day's clock agenda (Markdown)."
    )
    parser.add_argument("--start", default=DEFAULT_START, help="start of each day (HH:MM)")
    parser.add_argument("--day-end", default=DEFAULT_DAY_END, help="latest end of a day (HH:MM)")
    parser.add_argument(
        "--track",
        choices=("core", "full"),
        default="core",
        help="core: 00-07; full: setup, every lesson, the hackathon, demos, judging",
    )
    parser.add_argument(
        "--teams",
        type=int,
        default=DEFAULT_TEAMS,
        help=f"full track: teams that demo ({DEFAULT_TEAMS})",
    )
    parser.add_argument(
        "--hackathon-hours",
        type=float,
        default=HACKATHON_HOURS,
        help=f"full track: length of the hackathon ({HACKATHON_HOURS:g})",
    )
    args = parser.parse_args(argv)
    try:
        text = agenda_markdown(
            NOTEBOOKS_DIR, args.start, args.track, args.day_end, args.teams, args.hackathon_hours
        )
        print(text, end="")
    except ValueError as exc:
        parser.error(str(exc))
    return 0
