"""How much machine the room needs: memory and CPU of participants' servers, measured.

    sudo .venv/bin/python benchmarks/room_sizing.py [--lessons 00 01 05 06 07] [--out FILE]

Starts the room (``python -m course_lib room``, as an instructor would) on loopback and:

1. one participant logs in, starts their server and runs all of lesson 01 (their learner copy,
   every code cell in order, a fresh kernel); then three new participants do the same at once:
   the wall times from log-in to the end of lesson 01, alone and three at once;
2. one participant runs each lesson of ``--lessons`` in order, one fresh kernel per lesson (the
   previous one shut down, as "close and shut down" does): the RSS of all their processes (the
   Jupyter server, the kernel and whatever the kernel starts) at rest (server and an idle
   kernel), after each lesson and at its peak (sampled every 0.5 s), and the CPU time (user +
   system, children included) each lesson used.

Exercise cells of a learner copy raise NotImplementedError until solved; the runner goes on to
the next cell (the checker cell then uses the reference implementation), as a person would.
The profile is the room's environment's (``COURSE_PROFILE``, default full). Writes a JSON record
(``--out``, default build/room_sizing.json) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib.room import accounts  # noqa: E402
from course_lib.room.client import Participant  # noqa: E402
from course_lib.room.command import RoomCommand  # noqa: E402
from course_lib.room.names import account_name  # noqa: E402
from course_lib.settings import BUILD_DIR, NOTEBOOKS_DIR, profile  # noqa: E402

CODE = "sizing-code-1"
MiB = 2**20


def processes_of(name: str) -> list[psutil.Process]:
    uid = accounts.lookup(account_name(name)).pw_uid
    return [
        p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid
    ]


def rss_mib(name: str) -> float:
    total = 0
    for process in processes_of(name):
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / MiB


def cpu_seconds(name: str) -> float:
    total = 0.0
    for process in processes_of(name):
        try:
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def hub_mib(room: RoomCommand) -> float:
    """RSS of the room's own processes (the command, the hub, the proxy, the culler): those in
    its process tree that run as root, not as a participant."""
    top = psutil.Process(room.process.process.pid)
    total = 0
    for process in [top, *top.children(recursive=True)]:
        try:
            if process.uids().real == 0:
                total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / MiB


class PeakRSS:
    """Samples a participant's total RSS every 0.5 s in a thread; ``peak`` is the largest."""

    def __init__(self, name: str):
        self.name, self.peak, self._stop = name, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mib(self.name))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def lesson_cells(person: Participant, stem: str) -> list[str]:
    notebook = person.api("GET", f"contents/lessons/{stem}.ipynb").json()["content"]
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in notebook["cells"]
        if c["cell_type"] == "code"
    ]


def run_lesson(person: Participant, stem: str) -> dict:
    """Every code cell of the participant's copy of ``stem`` in a fresh kernel."""
    kernel = person.start_kernel()
    t0 = time.perf_counter()
    runs = person.execute(kernel, lesson_cells(person, stem), timeout=1800)
    seconds = time.perf_counter() - t0
    errors = [r.error for r in runs if r.status != "ok"]
    return {"kernel": kernel, "seconds": round(seconds, 1), "cells": len(runs), "errors": errors}


def join_and_run_01(person: Participant) -> dict:
    t0 = time.perf_counter()
    assert person.login(CODE).status_code == 302
    ready = person.start_server()
    lesson = run_lesson(person, "01_attention")
    person.api("DELETE", f"kernels/{lesson['kernel']}")
    return {"ready": round(ready, 1), "total": round(time.perf_counter() - t0, 1), **lesson}


def lesson_stems(prefixes: list[str]) -> list[str]:
    stems = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    return [s for s in stems if s[:2] in prefixes]


def alone_and_together(room: RoomCommand) -> dict:
    """Log-in to the end of lesson 01: one participant alone, then three new ones at once."""
    record = {}
    alone = Participant(room.url, "solo")
    record["lesson01_alone"] = join_and_run_01(alone)
    alone.close()
    group = [Participant(room.url, n) for n in ("trio-a", "trio-b", "trio-c")]
    results = {}
    threads = [
        threading.Thread(target=lambda p=p: results.__setitem__(p.name, join_and_run_01(p)))
        for p in group
    ]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record["lesson01_three_at_once"] = {"wall": round(time.perf_counter() - t0, 1), **results}
    for person in group:
        person.close()
    return record


def measure(room: RoomCommand, lessons: list[str], group_stage: bool = True) -> dict:
    record = alone_and_together(room) if group_stage else {}
    person = Participant(room.url, "sizer")
    assert person.login(CODE).status_code == 302
    record["sizer_ready"] = round(person.start_server(), 1)
    rest_kernel = person.start_kernel()
    person.execute(rest_kernel, ["1 + 1"])
    time.sleep(2)
    record["rest_mib"] = round(rss_mib("sizer"), 1)
    record["hub_mib"] = round(hub_mib(room), 1)
    person.api("DELETE", f"kernels/{rest_kernel}")
    record["lessons"] = {}
    for stem in lessons:
        cpu0 = cpu_seconds("sizer")
        with PeakRSS("sizer") as peak:
            lesson = run_lesson(person, stem)
        after = rss_mib("sizer")
        cpu = cpu_seconds("sizer") - cpu0
        person.api("DELETE", f"kernels/{lesson['kernel']}")
        time.sleep(1)
        record["lessons"][stem] = {
            **lesson,
            "rss_after_mib": round(after, 1),
            "rss_peak_mib": round(max(peak.peak, after), 1),
            "cpu_seconds": round(cpu, 1),
        }
        print(stem, record["lessons"][stem], flush=True)
    person.close()
    return record


def markdown_tables(record: dict) -> str:
    """The record as the Markdown tables docs/instructor.md quotes."""
    lines = []
    if "lesson01_alone" in record:
        alone, group = record["lesson01_alone"], record["lesson01_three_at_once"]
        people = [v for k, v in group.items() if k != "wall"]
        lines += [
            "| log-in to the end of lesson 01 | server ready (s) | lesson 01 (s) | total (s) |",
            "| --- | ---: | ---: | ---: |",
            f"| one participant alone | {alone['ready']} | {alone['seconds']} | {alone['total']} |",
        ]
        for stat, pick in (("slowest", max), ("fastest", min)):
            row = [pick(p[key] for p in people) for key in ("ready", "seconds", "total")]
            lines.append(f"| three at once, {stat} | " + " | ".join(map(str, row)) + " |")
        lines += [f"| three at once, wall | | | {group['wall']} |", ""]
    lines += [
        f"Server and idle kernel at rest: {record['rest_mib']} MiB "
        f"(log-in to a ready server: {record['sizer_ready']} s). The room itself (hub, proxy, "
        f"culler): {record.get('hub_mib', '?')} MiB.",
        "",
        "| lesson | wall (s) | CPU (s) | RSS after (MiB) | RSS peak (MiB) | cells failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stem, r in record["lessons"].items():
        lines.append(
            f"| {stem} | {r['seconds']} | {r['cpu_seconds']} | {r['rss_after_mib']} "
            f"| {r['rss_peak_mib']} | {len(r['errors'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", nargs="+", default=["00", "01", "05", "06", "07"])
    parser.add_argument("--threads", type=int, default=2, help="the room's --threads")
    parser.add_argument(
        "--no-group", action="store_true", help="skip the alone / three-at-once lesson 01 stage"
    )
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "room_sizing.json")
    args = parser.parse_args(argv)
    top = Path(tempfile.mkdtemp(prefix="course-room-sizing-"))
    os.chmod(top, 0o755)
    room = RoomCommand(top / "data", CODE, 6, ["--grant-traverse", "--threads", str(args.threads)])
    names = ["solo", "trio-a", "trio-b", "trio-c", "sizer"]
    try:
        room.start()
        record = measure(room, lesson_stems(args.lessons), not args.no_group)
    finally:
        left = room.stop() if room.process and room.process.running() else []
        for name in names:
            accounts.remove_account(account_name(name))
        shutil.rmtree(top, ignore_errors=True)
    record.update(
        profile=profile(),
        threads_per_kernel=args.threads,
        machine=f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, shared with other sessions",
        left_running_after_stop=left,
        command="sudo .venv/bin/python benchmarks/room_sizing.py " + " ".join(argv or sys.argv[1:]),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    print(markdown_tables(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
