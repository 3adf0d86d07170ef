"""Execute notebooks top to bottom, each in a fresh kernel, and store their outputs in place.

    python tools/execute_notebooks.py notebooks/*.ipynb

Runs under the same offline guard as the tests, prints each notebook's wall time, and records
it in ``notebooks/timings.json`` (the course map in the README and in 00_welcome reads it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TIMINGS = Path(__file__).resolve().parents[1] / "notebooks" / "timings.json"


def execute(path: Path, timeout: int = 1800) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds


def main(paths: list[str]) -> int:
    os.environ.setdefault("COURSE_OFFLINE_GUARD", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    for p in map(Path, paths):
        seconds = execute(p)
        timings[p.name] = {
            "seconds": round(seconds, 1),
            "cores": os.cpu_count(),
            "measured": time.strftime("%Y-%m-%d"),
        }
        print(f"{p.name}: {seconds:.1f} s on {os.cpu_count()} cores", flush=True)
        TIMINGS.write_text(json.dumps(dict(sorted(timings.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
