"""The course map: the lessons in order, with the measured run time of each notebook.

Times come from ``notebooks/timings.json``, which ``python -m course_lib run`` writes each time
it executes a notebook top to bottom in a fresh kernel.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from ..settings import NOTEBOOKS_DIR as NOTEBOOKS

LESSONS = [
    ("00_welcome.ipynb", "Welcome", "map of the day, how the notebooks work, environment check"),
    ("01_attention.ipynb", "Attention", "dot products, stable softmax, why sqrt(d_k), masks"),
    (
        "02_multi_head_attention.ipynb",
        "Multi-head attention",
        "projections, head split/merge, cost, MiniLM's 12 heads",
    ),
    (
        "03_positional_encoding.ipynb",
        "Positional encoding",
        "permutation equivariance, sinusoids, learned PE, RoPE",
    ),
    (
        "04_bert_from_scratch.ipynb",
        "BERT from scratch",
        "WordPiece, the encoder, real pretrained weights",
    ),
    ("05_fine_tuning.ipynb", "Fine-tuning", "real tweets, baselines, a training loop, evaluation"),
    ("06_optimization.ipynb", "Optimisation", "int8, ONNX Runtime, pruning: size, latency, F1"),
    ("07_deployment.ipynb", "Deployment", "FastAPI service, demo page, bad input, load test"),
    ("08_scaling_out.ipynb", "Scaling out", "DDP under torchrun, equal to one process, on paper"),
    ("09_text_generation.ipynb", "Text generation", "a small Llama, sampling, the KV cache"),
    ("10_hackathon.ipynb", "Hackathon", "the brief, playbook, dev set, starter, submission server"),
]


def measured_times(path: Path = NOTEBOOKS / "timings.json") -> dict[str, dict]:
    return json.loads(path.read_text()) if path.is_file() else {}


def course_map_markdown(link_prefix: str = "") -> str:
    """A Markdown table of the lessons that exist, with their measured run times.

    ``link_prefix`` is put before each notebook link (``"notebooks/"`` for the README)."""
    times = measured_times()
    rows = ["| # | notebook | what you do | run time |", "| --- | --- | --- | --- |"]
    for name, title, idea in LESSONS:
        if not (NOTEBOOKS / name).is_file():
            continue
        t = times.get(name)
        when = f"{t['seconds']:.0f} s ({t['cores']} cores)" if t else "not measured yet"
        rows.append(f"| {name[:2]} | [{title}]({link_prefix}{name}) | {idea} | {when} |")
    return "\n".join(rows)


def _imported_modules(source: str) -> list[str]:
    """``course_lib`` modules named by the import statements of one code cell, in order."""
    # IPython's line magics and shell escapes are not Python: blank them out before parsing
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:  # a cell magic (%%bash ...) or broken code: no import to read
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[1] for a in node.names if a.name.startswith("course_lib.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "course_lib":
                continue
            if len(parts) > 1:  # from course_lib.data import LABELS
                names.append(parts[1])
            else:  # from course_lib import a, b as c
                names += [a.name for a in node.names]
    return names


MACHINERY = ("tooling", "runtime")


def modules_used(notebook: Path) -> list[str]:
    """The ``course_lib`` modules a notebook imports, in import order; the course's machinery
    (``tooling``, and ``runtime``: setup, the exercise checkers, ``compare_prediction``) that
    every lesson uses alike is left out."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found: list[str] = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for name in _imported_modules("".join(cell["source"])):
            if name not in MACHINERY and name not in found:
                found.append(name)
    return found


def modules_table_markdown() -> str:
    """A Markdown table: each lesson and the ``course_lib`` modules it imports."""
    rows = ["| # | lesson | imports from `course_lib` |", "| --- | --- | --- |"]
    for name, title, _ in LESSONS:
        path = NOTEBOOKS / name
        if path.is_file():
            used = ", ".join(f"`{m}`" for m in modules_used(path)) or "(course tooling only)"
            rows.append(f"| {name[:2]} | {title} | {used} |")
    return "\n".join(rows)
