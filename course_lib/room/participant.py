"""What runs as the participant, just before their server starts (``python -m
course_lib.room.participant``).

It runs under the participant's own account, in their home, so that everything it writes is
theirs and nothing is written there by root:

- the learner copies in ``~/lessons`` (the very build ``make lab`` uses: an edited copy is never
  overwritten, a changed lesson goes beside it as ``NN_name.new.ipynb``);
- JupyterLab's news prompt turned off in the participant's own lab settings (offline room);
- ``~/artifacts`` (the participant's ``COURSE_ARTIFACTS``) with, for each shared model not
  there yet, a folder of links to the read-only shared files: lessons 06-10 load it without
  training, and lesson 05, when run, replaces the links with the participant's own model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..tooling.student import write_student_versions

LESSONS = "lessons"
ARTIFACTS = "artifacts"
NEWS_SETTINGS = Path(
    ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
)
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


def write_lab_settings(home: Path) -> bool:
    """Turn the news prompt off unless the participant already chose; True when written."""
    path = home / NEWS_SETTINGS
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(NO_NEWS, indent=1) + "\n")
    return True


def link_shared_model(shared: Path, artifacts: Path) -> bool:
    """``artifacts/NAME`` as a folder of links to the files of ``shared`` (a model folder),
    unless the participant has a model of that name already; True when made."""
    target = artifacts / shared.name
    if target.exists() or target.is_symlink():
        return False
    staged = artifacts / f".{shared.name}.linking"
    staged.mkdir(parents=True, exist_ok=True)
    for item in sorted(shared.iterdir()):
        link = staged / item.name
        if not link.is_symlink():
            link.symlink_to(item)
    staged.rename(target)  # all links or none: a half-linked folder never looks complete
    return True


def prepare(home: Path, source: Path, shared: list[Path]) -> list[str]:
    """Everything above for ``home``; returns one line per thing done."""
    lines = [r.describe() for r in write_student_versions(source, home / LESSONS)]
    if write_lab_settings(home):
        lines.append("JupyterLab news prompt turned off")
    for model in shared:
        if link_shared_model(model, home / ARTIFACTS):
            lines.append(f"shared model {model.name} linked (read-only)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.room.participant")
    parser.add_argument("--home", type=Path, default=Path.home())
    parser.add_argument("--source", type=Path, required=True, help="the course's notebooks/")
    parser.add_argument("--shared", type=Path, action="append", default=[], help="model folder")
    args = parser.parse_args(argv)
    for line in prepare(args.home, args.source, args.shared):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
