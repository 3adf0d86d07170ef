"""Command line: ``python -m course_lib VERB [options]``; ``--help`` lists every verb.

Each verb is one line of ``VERBS``: its module, the function that takes the remaining arguments,
and one line of help. Modules are imported only when their verb runs, so ``--help`` is instant.
"""

from __future__ import annotations

import importlib
import sys

# verb: (module, function(argv) -> exit status, one line for --help)
VERBS: dict[str, tuple[str, str, str]] = {
    "setup": (
        "course_lib.tooling.install",
        "main",
        "create .venv and install the course (make setup without make); --wheelhouse DIR: offline",
    ),
    "doctor": (
        "course_lib.tooling.checkup",
        "main",
        "check this machine for the course (exit status 1 when something fails)",
    ),
    "lab": (
        "course_lib.tooling.student",
        "lab_main",
        "build learner copies (edits kept), open JupyterLab on them; --instructor: notebooks/",
    ),
    "student": (
        "course_lib.tooling.student",
        "main",
        "write learner copies to learner/ (solutions stubbed; an edited copy is never overwritten)",
    ),
    "run": (
        "course_lib.tooling.runner",
        "main",
        "execute notebooks headless with a timing table; --html exports to build/html/",
    ),
    "map": (
        "course_lib.__main__",
        "print_map",
        "print the course map with measured notebook run times (Markdown)",
    ),
    "agenda": (
        "course_lib.tooling.agenda",
        "main",
        "print the day's clock agenda (Markdown); --start 08:30 --track core|full",
    ),
    "train": (
        "course_lib.finetuned",
        "main",
        "train lesson 05's model and save it in artifacts/ (--full, --set FIELD=VALUE, --out DIR)",
    ),
    "pack-model": (
        "course_lib.tooling.packing",
        "pack_main",
        "pack the fine-tuned model in artifacts/ into one archive (for slow laptops)",
    ),
    "unpack-model": (
        "course_lib.tooling.packing",
        "unpack_main",
        "unpack a pack-model archive into artifacts/ (lessons 06-10 then skip training)",
    ),
    "bundle": (
        "course_lib.tooling.bundle",
        "main",
        "download every pinned requirement into build/wheelhouse/ for an offline install",
    ),
    "serve": (
        "course_lib.serving.cli",
        "main",
        "serve a fine-tuned model over HTTP (see serve --help)",
    ),
    "room": (
        "course_lib.room.cli",
        "main",
        "start the workshop's JupyterHub (one account per participant; see room --help)",
    ),
    "score": (
        "course_lib.hackathon.cli",
        "main",
        "score the hackathon teams' files and services; print and draw the leaderboard",
    ),
    "hackathon": (
        "course_lib.hackathon.server_cli",
        "main",
        "the instructor's submission server: hackathon answers OUT | hackathon serve ...",
    ),
}


def print_map(argv: list[str]) -> int:
    """``map [--modules]``: the course map as Markdown, with links into notebooks/ (as the README
    has it); ``--modules``: which ``course_lib`` modules each lesson imports."""
    from .tooling.coursemap import course_map_markdown, modules_table_markdown

    if argv not in ([], ["--modules"]):
        print("usage: python -m course_lib map [--modules]")
        return 0 if argv[0] in ("-h", "--help") else 2
    print(modules_table_markdown() if argv else course_map_markdown(link_prefix="notebooks/"))
    return 0


def usage() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: python -m course_lib VERB [options]   (VERB --help for its options)", ""]
    lines += ["verbs:"] + [f"  {verb:<{width}}  {text}" for verb, (_, _, text) in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"unknown verb {verb!r}; expected one of: {', '.join(VERBS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    module, function, _ = VERBS[verb]
    return getattr(importlib.import_module(module), function)(rest)


if __name__ == "__main__":
    sys.exit(main())
