"""Training throughput of lesson 05's loop: 1 process with all cores against N processes (DDP).

    PYTHONPATH=. python benchmarks/ddp_throughput.py [--nproc 2] [--steps 5] [--batch-size 32]

Both settings run under ``torchrun`` (``course_lib.distributed.launch``) in the same call, on the
real MiniLM, with the same global batch; the cores are shared out among the ranks
(``OMP_NUM_THREADS``). Prints examples per second and the ratio against 1 process. A handful of
steps on a shared machine is noisy: run it on an idle one, and more than once.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from course_lib import distributed


def measure(nproc: int, steps: int, batch_size: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        distributed.launch(
            [
                "-m",
                "course_lib.distributed",
                "throughput",
                "--steps",
                str(steps),
                "--batch-size",
                str(batch_size),
                "--out",
                str(out),
            ],
            nproc=nproc,
            threads=threads,
            echo=False,
        )
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    one = measure(1, args.steps, args.batch_size, cores)
    many = measure(args.nproc, args.steps, args.batch_size, max(1, cores // args.nproc))
    print(f"{'setting':30s} {'examples/s':>10s}  ratio")
    for r in (one, many):
        name = f"{r['world_size']} process(es) x {r['threads_per_rank']} thread(s)"
        ratio = r["examples_per_s"] / one["examples_per_s"]
        print(f"{name:30s} {r['examples_per_s']:10.1f}  {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
