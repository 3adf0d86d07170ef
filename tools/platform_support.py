"""Which platforms and Python versions can install every pin of requirements.txt (maintainers).

    .venv/bin/python tools/platform_support.py [--python 3.11 3.12] > build/platforms.md

For each target (an OS and CPU as pip platform tags, and a Python version) it asks pip's
dry-run resolver, with wheels only, whether every pinned line has a wheel there:

    pip install --dry-run --ignore-installed --no-deps --only-binary=:all: \\
        --implementation cp --python-version 3.11 --platform TAG [--platform TAG ...] \\
        --target TMP -r requirements.txt

and, when it fails, which pins fail (pip stops at the first, so those are taken out and it asks
again). It needs the package registry, so it is not a unit test. ``--no-deps``: pip evaluates
the environment markers of dependencies (``platform_system == "Linux"``) for the machine it runs
on, not for the target, so a dependency resolution for another OS asks for the wrong wheels
(torch's Linux-only CUDA libraries for Windows); the pins are what the course chooses.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# name, pip platform tags (pip takes each tag as given: list the manylinux/macOS versions)
TARGETS = [
    ("Linux x86_64", [f"manylinux_2_{v}_x86_64" for v in (17, 28, 34)] + ["manylinux2014_x86_64"]),
    (
        "Linux aarch64",
        [f"manylinux_2_{v}_aarch64" for v in (17, 28, 34)] + ["manylinux2014_aarch64"],
    ),
    ("Windows x86_64", ["win_amd64"]),
    ("macOS arm64 (Apple silicon, macOS 14)", [f"macosx_{v}_0_arm64" for v in (11, 12, 13, 14)]),
    ("macOS x86_64 (Intel, macOS 14)", [f"macosx_{v}_0_x86_64" for v in (10, 11, 12, 13, 14)]),
]
_NOT_FOUND = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+==[^\s;]+)")
_CONFLICT = re.compile(r"The user requested ([A-Za-z0-9_.\-]+==[^\s;]+)")


def pins(path: Path) -> list[str]:
    return [ln.split("#")[0].strip() for ln in path.read_text().splitlines() if "==" in ln]


def dry_run(lines: list[str], tags: list[str], python: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "r.txt"
        reqs.write_text("\n".join(lines) + "\n")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--no-deps", "--only-binary=:all:", "--implementation", "cp"]
        command += ["--python-version", python, "--target", str(Path(tmp) / "t"), "-r", str(reqs)]
        for tag in tags:
            command += ["--platform", tag]
        done = subprocess.run(command, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr


def failing_pins(lines: list[str], tags: list[str], python: str) -> list[str]:
    """The pins with no wheel for the target (empty: every pin installs)."""
    failing, left = [], list(lines)
    while left:
        status, log = dry_run(left, tags, python)
        if status == 0:
            return failing
        found = _NOT_FOUND.search(log) or _CONFLICT.search(log)
        if not found or found.group(1) not in left:
            return failing + [f"(pip failed: {log.strip().splitlines()[-1]})"]
        failing.append(found.group(1))
        left.remove(found.group(1))
    return failing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", nargs="+", default=["3.11"])
    parser.add_argument("--requirements", type=Path, default=REPO / "requirements.txt")
    args = parser.parse_args(argv)
    lines = pins(args.requirements)
    print(f"| platform | Python | pins with a wheel (of {len(lines)}) | pins without |")
    print("| --- | --- | ---: | --- |")
    for name, tags in TARGETS:
        for python in args.python:
            failing = failing_pins(lines, tags, python)
            missing = ", ".join(failing) or "none"
            print(f"| {name} | {python} | {len(lines) - len(failing)} | {missing} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
