"""``python -m course_lib setup [--wheelhouse DIR]``: ``make setup`` for machines without make.

Runs with any Python 3.11 before anything is installed (standard library only): it creates
``.venv`` when missing, installs requirements.txt and then the course itself, and writes the
stamp ``.venv/.installed`` that the Makefile writes, so that a later ``make lab`` (or ``make
setup``) sees an up-to-date environment and installs nothing.

With ``--wheelhouse DIR`` (a bundle from ``make bundle``) everything comes from that folder only
(``--no-index --find-links DIR``), the course included: it is built with setuptools from the
bundle, installed into the venv (``--no-build-isolation``), so no build tool is fetched. The
bundle's manifest is checked first (the Python version, OS and CPU it serves, the requirements
it was made from).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

from ..settings import REPO_ROOT
from .bundle import bundle_problems

VENV = REPO_ROOT / ".venv"
STAMP_NAME = ".installed"  # the Makefile's $(STAMP)
# Builds the course's editable install by itself (older setuptools also need `wheel`); every
# bundle holds it (bundle.BUILD_TOOLS). The Makefile's offline install names the same.
BUILD_TOOL = "setuptools>=70.1"


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def install_commands(python: Path, wheelhouse: Path | None) -> list[list[str]]:
    """The two pip commands of ``make setup`` (and their offline form with a wheelhouse)."""
    pip = [str(python), "-m", "pip", "install"]
    offline = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    requirements = str(REPO_ROOT / "requirements.txt")
    course = ["--no-deps", *offline, *(["--no-build-isolation"] if wheelhouse else [])]
    return [
        [*pip, "--no-compile", "--progress-bar", "off", *offline, "-r", requirements]
        + ([BUILD_TOOL] if wheelhouse else []),
        [*pip, *course, "-e", str(REPO_ROOT)],
    ]


def setup(wheelhouse: Path | None = None, folder: Path = VENV, env: dict | None = None) -> float:
    """Create/refresh the course's virtual environment; return the seconds it took."""
    start = time.perf_counter()
    if wheelhouse is not None:
        problems = bundle_problems(wheelhouse, REPO_ROOT / "requirements.txt")
        if problems:
            raise RuntimeError("cannot install from this bundle:\n- " + "\n- ".join(problems))
    python = venv_python(folder)
    if not python.exists():
        print(f"creating {folder}", flush=True)
        venv.EnvBuilder(with_pip=True).create(folder)
    for command in install_commands(python, wheelhouse):
        print("$ " + " ".join(command), flush=True)
        done = subprocess.run(command, cwd=REPO_ROOT, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"pip failed (exit status {done.returncode}); nothing was stamped")
    (folder / STAMP_NAME).touch()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib setup",
        description="Create .venv and install the course into it (what `make setup` does).",
    )
    parser.add_argument(
        "--wheelhouse", type=Path, help="install from this bundle folder only (no network)"
    )
    args = parser.parse_args(argv)
    try:
        seconds = setup(args.wheelhouse.resolve() if args.wheelhouse else None)
    except RuntimeError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 1
    activate = r".venv\Scripts\activate" if os.name == "nt" else "source .venv/bin/activate"
    print(
        f"Installed in {seconds:.0f} s. Next: {activate}, then `python -m course_lib doctor` "
        f"and `python -m course_lib lab`."
    )
    return 0
