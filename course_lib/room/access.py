"""Can a participant's account reach the course? Which directories stop it, and opening them.

A participant's server runs as their own account, so that account must pass through every
directory on the way to the course's Python, the repository and the homes. A Python installed
under ``/root`` (pyenv's default, mode 0700) cannot be reached by any other account: the server
would fail with "Permission denied". The room finds such directories before it starts and
either refuses, naming them, or (``--grant-traverse``) adds the execute bit for others on them
for as long as it runs: others may then pass through, not list. The modes are put back at stop.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path


def ancestors(path: Path) -> list[Path]:
    """``path``'s directories from the root down, through every symlink on the way (the
    link's folders and its target's folders both have to be passable)."""
    seen: list[Path] = []
    for candidate in (path.absolute(), path.resolve()):
        for folder in reversed(candidate.parents):
            if folder not in seen:
                seen.append(folder)
        if candidate.is_dir() and candidate not in seen:
            seen.append(candidate)
    return seen


def blocking_directories(paths: Iterable[Path]) -> list[Path]:
    """Directories on the way to ``paths`` that other accounts cannot pass (no ``o+x``)."""
    blocked: list[Path] = []
    for path in paths:
        for folder in ancestors(Path(path)):
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH and folder not in blocked:
                blocked.append(folder)
    return blocked


def paths_participants_need(repo: Path, homes: Path, shared: Iterable[Path] = ()) -> list[Path]:
    """What a participant's server opens: the course's Python (the venv and the interpreter it
    links to, with its standard library), the repository (course_lib, notebooks) and the homes."""
    return [
        Path(sys.executable),
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(os.path.realpath(sys.executable)),
        Path(repo),
        Path(homes),
        *map(Path, shared),
    ]


def grant_traverse(folders: Iterable[Path]) -> dict[Path, int]:
    """Add the execute bit for others on ``folders``; return their previous modes."""
    before = {}
    for folder in folders:
        mode = stat.S_IMODE(folder.stat().st_mode)
        before[folder] = mode
        os.chmod(folder, mode | stat.S_IXOTH)
    return before


def restore_modes(before: dict[Path, int]) -> None:
    """Put back the modes ``grant_traverse`` changed."""
    for folder, mode in before.items():
        try:
            os.chmod(folder, mode)
        except OSError as exc:
            print(f"could not restore mode {mode:o} on {folder}: {exc}", file=sys.stderr)


def blocked_message(blocked: list[Path]) -> str:
    """What is wrong and the two ways out, in words."""
    listing = ", ".join(f"{p} (mode {stat.S_IMODE(p.stat().st_mode):o})" for p in blocked)
    return (
        f"Participants' servers run as their own accounts, and those accounts cannot pass "
        f"through {listing}, on the way to the course's Python ({os.path.realpath(sys.executable)})"
        f" or the repository. Either install the course where every account can reach it (for "
        f"example: git clone it into /opt/course and run `make setup PYTHON=/usr/bin/python3.11` "
        f"there), or start the room with --grant-traverse: it then lets other accounts pass "
        f"through (not list) those directories while it runs, and puts their modes back at stop."
    )
