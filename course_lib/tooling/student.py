"""Write student versions of the notebooks: each ``solution`` cell's answer becomes a stub.

``python -m course_lib student [--out build/student]``. Lines between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` are replaced by a ``raise NotImplementedError`` at the same indentation, and
all outputs are cleared, so the participant sees no answers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from ..settings import REPO_ROOT

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'


def strip_solution(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block in ``source`` with a stub."""
    out, inside = [], False
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested '{BEGIN}' in:\n{source}")
            inside = True
            indent = re.match(r"\s*", line).group(0)
            out.append(f"{indent}{STUB}\n")
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}' in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}' in:\n{source}")
    return "".join(out)


def student_notebook(nb: dict) -> dict:
    """A copy of the notebook dict with solutions stubbed and outputs cleared."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        if "solution" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            if BEGIN not in source:
                raise ValueError(f"a cell tagged 'solution' has no '{BEGIN}' marker:\n{source}")
            cell["source"] = strip_solution(source)
    return nb


def write_student_versions(src: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.glob("*.ipynb")):
        nb = student_notebook(json.loads(path.read_text(encoding="utf-8")))
        target = out / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib student", description=__doc__)
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "notebooks")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "student")
    args = parser.parse_args(argv)
    for path in write_student_versions(args.src, args.out):
        print(path)
    return 0
