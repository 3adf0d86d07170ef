"""Learner copies of the notebooks: answers become stubs, test machinery goes.

``python -m course_lib student [--out learner]``. In a cell tagged ``solution`` the lines between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` (any number of ``#``, as nbgrader writes ``###``) are
replaced by a ``raise NotImplementedError`` at the same indentation. In a cell tagged
``prediction`` each ``name = value`` line between ``# BEGIN PREDICTION`` and ``# END PREDICTION``
becomes ``name = ...  # your prediction`` (the cell after it then reports "no prediction" until
the learner writes one). nbval's markers (``# NBVAL_CHECK_OUTPUT`` and the like, and its
``nbval-*`` tags) are removed and all outputs cleared, so the participant sees neither answers
nor test machinery. Markers in a cell without the matching tag, or a tagged cell without
markers, stop the build with a message naming the notebook and the cell: an answer is never
shipped by accident.

A learner's work is never overwritten. The build remembers a fingerprint (SHA-256) of every copy
it wrote in ``learner/.course-manifest.json``. On the next build, a copy whose bytes still match
is replaced by the new version; a copy that differs (the learner typed or ran something and
saved) is kept as it is, and when the lesson itself changed the new version is written beside it
as ``NN_name.new.ipynb``. Every run prints what it did with each file.

The learner folder is git-ignored by a ``.gitignore`` of its own, so ``git status`` stays clean.
The lessons find data, models and build output from the repository (``course_lib.settings``), so
they run the same from ``learner/`` as from ``notebooks/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..settings import NOTEBOOKS_DIR, REPO_ROOT

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
PREDICTION_STUB = "...  # your prediction"
LEARNER_DIR = REPO_ROOT / "learner"
MANIFEST = ".course-manifest.json"
NEW_SUFFIX = ".new.ipynb"
# "# BEGIN SOLUTION", "### END PREDICTION": the block markers, with any number of '#'.
MARKER = re.compile(r"^\s*#+\s*(BEGIN|END)\s+(SOLUTION|PREDICTION)\b")
# nbval's comment markers: test machinery, meaningless to a learner.
NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*=(?!=)")


def _marker(line: str) -> tuple[str, str] | None:
    """``("BEGIN", "SOLUTION")`` for a marker line, else None."""
    found = MARKER.match(line)
    return (found.group(1), found.group(2)) if found else None


def _blocks(source: str, kind: str, replace) -> str:
    """``source`` with every BEGIN/END ``kind`` block handed to ``replace(lines, indent)``."""
    out: list[str] = []
    inside: list[str] | None = None
    indent = ""
    for line in source.splitlines(keepends=True):
        marker = _marker(line)
        if marker == ("BEGIN", kind):
            if inside is not None:
                raise ValueError(f"nested '# BEGIN {kind}'")
            inside, indent = [], re.match(r"\s*", line).group(0)
        elif marker == ("END", kind):
            if inside is None:
                raise ValueError(f"'# END {kind}' without '# BEGIN {kind}'")
            out += replace(inside, indent)
            inside = None
        elif inside is not None:
            inside.append(line)
        else:
            out.append(line)
    if inside is not None:
        raise ValueError(f"'# BEGIN {kind}' without '# END {kind}'")
    return "".join(out)


def strip_solution(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block in ``source`` with a stub."""
    return _blocks(source, "SOLUTION", lambda lines, indent: [f"{indent}{STUB}\n"])


def _unfilled(lines: list[str], indent: str) -> list[str]:
    out = []
    for line in lines:
        if not line.strip():
            continue
        found = ASSIGNMENT.match(line)
        if not found:
            raise ValueError(
                f"a prediction block holds one `name = value` per line, found {line.strip()!r}"
            )
        out.append(f"{found.group(1)}{found.group(2)} = {PREDICTION_STUB}\n")
    return out


def strip_prediction(source: str) -> str:
    """Turn each ``name = value`` line of a BEGIN/END PREDICTION block into an empty guess."""
    return _blocks(source, "PREDICTION", _unfilled)


def strip_nbval_markers(source: str) -> str:
    """``source`` without nbval's comment lines (``# NBVAL_CHECK_OUTPUT`` and the like)."""
    return "".join(
        line for line in source.splitlines(keepends=True) if not NBVAL_MARKER.match(line)
    )


def _learner_source(source: str, tags: list[str]) -> str:
    """One code cell's source as the learner sees it; ValueError says what is wrong."""
    kinds = {marker[1] for line in source.splitlines() if (marker := _marker(line))}
    for kind, strip in (("SOLUTION", strip_solution), ("PREDICTION", strip_prediction)):
        tag = kind.lower()
        if tag in tags and kind not in kinds:
            raise ValueError(f"tagged '{tag}' but has no '# BEGIN {kind}' marker")
        if kind in kinds and tag not in tags:
            raise ValueError(
                f"has '# BEGIN/END {kind}' markers but is not tagged '{tag}': tag it, or its "
                f"{tag} would reach the learner"
            )
        if tag in tags:
            source = strip(source)
    return strip_nbval_markers(source)


def student_notebook(nb: dict, name: str = "notebook") -> dict:
    """A copy of the notebook dict with answers stubbed, nbval's markers gone, outputs cleared.

    ``name`` (the file name) is only for the error message that names a faulty cell."""
    nb = json.loads(json.dumps(nb))
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        metadata = cell.get("metadata", {})
        tags = metadata.get("tags", [])
        try:
            cell["source"] = _learner_source(source, tags)
        except ValueError as exc:
            first = next((line for line in source.splitlines() if line.strip()), "")[:60]
            raise ValueError(f"{name}, cell {index} ({first!r}): {exc}") from None
        if any(tag.startswith("nbval-") for tag in tags):
            metadata["tags"] = [tag for tag in tags if not tag.startswith("nbval-")]
    return nb


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CopyResult:
    path: Path
    action: str  # "written" | "updated" | "unchanged" | "kept" | "kept+new"
    new_version: Path | None = None

    def describe(self) -> str:
        name = self.path.name
        return {
            "written": f"{name}: written",
            "updated": f"{name}: updated to the new version (you had not changed it)",
            "unchanged": f"{name}: up to date",
            "kept": f"{name}: KEPT, you edited it (the lesson has not changed since)",
            "kept+new": f"{name}: KEPT, you edited it; the lesson changed, new version "
            f"written beside it as {self.new_version.name if self.new_version else '?'}",
        }[self.action]


def write_student_versions(src: Path = NOTEBOOKS_DIR, out: Path = LEARNER_DIR) -> list[CopyResult]:
    """Write a learner copy of every notebook in ``src`` to ``out``, never overwriting edits."""
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# learner copies, generated by `python -m course_lib student`\n*\n")
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    results = []
    for path in sorted(src.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")), path.name)
        data = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        target, beside = out / path.name, out / (path.stem + NEW_SUFFIX)
        recorded = manifest.get(path.name)
        if not target.exists():
            action = "written"
        else:
            current = _digest(target.read_bytes())
            if current == _digest(data):
                action = "unchanged"
            elif recorded is not None and current == recorded:
                action = "updated"
            elif recorded == _digest(data):
                action = "kept"  # edited by the learner; the lesson is what we wrote last time
            else:
                action = "kept+new"
        if action in ("written", "updated"):
            target.write_bytes(data)
            manifest[path.name] = _digest(data)
            beside.unlink(missing_ok=True)  # an older "new version" is stale now
        elif action == "unchanged":
            manifest[path.name] = _digest(data)
        elif action == "kept+new":
            beside.write_bytes(data)
        results.append(CopyResult(target, action, beside if action == "kept+new" else None))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib student",
        description="Write learner copies of the notebooks (solutions stubbed, outputs cleared); "
        "a copy you edited is never overwritten.",
    )
    parser.add_argument("--src", type=Path, default=NOTEBOOKS_DIR)
    parser.add_argument("--out", type=Path, default=LEARNER_DIR)
    args = parser.parse_args(argv)
    results = write_student_versions(args.src, args.out)
    for result in results:
        print(result.describe())
    print(f"Learner copies are in {args.out}. Open them with `make lab`.")
    return 0


# --------------------------------------------------------------------------- opening JupyterLab


def running_as_root() -> bool:
    """True for the root user on Unix (workshop containers, cloud VMs); never on Windows."""
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def lab_command(first_notebook: str, as_root: bool) -> list[str]:
    """The JupyterLab command line, run from the folder it should show.

    As root JupyterLab refuses to start ("Running as root is not recommended") unless given
    ``--allow-root``."""
    import sys

    command = [sys.executable, "-m", "jupyter", "lab", first_notebook]
    return command + ["--allow-root"] if as_root else command


def lab_main(argv: list[str] | None = None) -> int:
    """``python -m course_lib lab [--instructor]``: open JupyterLab on the learner copies
    (built or refreshed first, edits kept) or, for instructors, on ``notebooks/``."""
    import subprocess
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m course_lib lab",
        description="Build the learner copies (your edits are kept) and open JupyterLab on them.",
    )
    parser.add_argument(
        "--instructor", action="store_true", help="open notebooks/ (solutions shown) instead"
    )
    parser.add_argument("--out", type=Path, default=LEARNER_DIR, help="learner copies folder")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the learner copies, do not start JupyterLab",
    )
    args = parser.parse_args(argv)
    if args.instructor:
        folder = NOTEBOOKS_DIR
    else:
        folder = args.out
        for result in write_student_versions(NOTEBOOKS_DIR, folder):
            print(result.describe())
    if args.build_only:
        return 0
    as_root = running_as_root()
    if as_root:
        print(
            "Warning: running as root (a workshop container or cloud VM?). JupyterLab refuses "
            "root by default; starting it with --allow-root.",
            file=sys.stderr,
        )
    first = sorted(p.name for p in folder.glob("[0-9][0-9]_*.ipynb") if NEW_SUFFIX not in p.name)
    command = lab_command(first[0] if first else ".", as_root)
    print(f"Opening JupyterLab on {folder} (stop it with Ctrl-C, twice).", flush=True)
    try:
        return subprocess.run(command, cwd=folder).returncode
    except KeyboardInterrupt:
        return 0
