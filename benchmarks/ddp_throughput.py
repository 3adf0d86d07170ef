"""Training throughput of lesson 05's loop: 1 process with all cores against N processes (DDP).

    PYTHONPATH=. python benchmarks/ddp_throughput.py [--nproc 2] [--steps 5] [--batch-size 32]

Both settings run this file under ``torchrun`` (``course_lib.distributed.launch``) in the same
call, on the real MiniLM, with the same global batch; the cores are shared out among the ranks
(``OMP_NUM_THREADS``). Each rank runs ``course_lib.train.fine_tune`` for a few optimizer steps
with ``course_lib.distributed.DDPRanks``. Prints examples per second and the ratio against 1
process. A handful of steps on a shared machine is noisy: run it on an idle one, more than once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record


def throughput_worker(steps: int, batch_size: int, max_length: int = 64) -> dict:
    """Time ``steps`` optimizer steps of lesson 05's default setting in this process group;
    returns (on every rank) examples per second over the measured steps."""
    import torch

    from course_lib import distributed, train
    from course_lib.data import load_split, subsample

    texts, labels = load_split("train")
    texts, labels = subsample(texts, labels, 4 * steps * batch_size, seed=0)
    config = train.default_config(
        batch_size=batch_size, max_length=max_length, evals_per_epoch=1, max_steps=steps
    )
    # a tiny validation set: the one evaluation at the end is not what is measured
    ranks = distributed.DDPRanks()
    result = train.fine_tune(
        texts, labels, texts[:8], labels[:8], config, progress=False, ranks=ranks
    )
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    return {
        "world_size": ranks.world_size,
        "threads_per_rank": torch.get_num_threads(),
        "trainable_parameters": trainable,  # the gradients the all-reduce carries every step
        "steps": len(result.history),
        "examples_per_s": round(len(result.history) * batch_size / result.train_seconds, 1),
    }


@record
def worker_main(args) -> None:
    from course_lib import distributed
    from course_lib.runtime.environment import setup

    setup(threads=distributed.threads_per_rank(), verbose=False)
    with distributed.process_group() as info:
        report = throughput_worker(args.steps, args.batch_size)
        if info.is_main:
            Path(args.out).write_text(json.dumps(report))


def measure(nproc: int, steps: int, batch_size: int, threads: int) -> dict:
    from course_lib import distributed

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        distributed.launch(
            [__file__, "--worker", "--steps", str(steps), "--batch-size", str(batch_size)]
            + ["--out", str(out)],
            nproc=nproc,
            threads=threads,
            echo=False,
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return 0
    cores = os.cpu_count() or 1
    one = measure(1, args.steps, args.batch_size, cores)
    many = measure(args.nproc, args.steps, args.batch_size, max(1, cores // args.nproc))
    print(f"{'setting':30s} {'examples/s':>10s}  ratio")
    for r in (one, many):
        name = f"{r['world_size']} process(es) x {r['threads_per_rank']} thread(s)"
        ratio = r["examples_per_s"] / one["examples_per_s"]
        print(f"{name:30s} {r['examples_per_s']:10.1f}  {ratio:.2f}x")
    print(f"(the all-reduce carries {many['trainable_parameters'] / 1e6:.1f} M gradients a step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
