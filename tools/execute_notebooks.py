"""Execute notebooks top to bottom, each in a fresh kernel, and store their outputs in place.

    python tools/execute_notebooks.py notebooks/*.ipynb

A thin call of ``python -m course_lib run`` (``course_lib/tooling/runner.py``): the same offline
guard as the tests, a per-cell time limit, a timing table, and ``notebooks/timings.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib.tooling.runner import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
