"""Scaling out: lesson 05's training loop on one process or many (DDP under ``torchrun``).

``torchrun --nproc-per-node=N`` starts N copies (*ranks*) of one program. Each holds the whole
model and takes its share of every global batch; ``DistributedDataParallel`` averages the
gradients over the ranks (all-reduce) before the optimizer step, so all copies take the step one
process would take on the whole batch. Here: ``process_group()`` (gloo on CPU, nccl on GPU,
timeouts, left also on error); ``DDPRanks``, which runs ``course_lib.train.fine_tune`` on many
processes; ``launch()`` (torchrun from Python, no shell, live output, a ``RankFailedError`` naming
the failing rank); a tiny BERT for exact checks. Who trains on which examples and the scaling
rule are in ``course_lib.sharding``.

    torchrun --standalone --nproc-per-node=2 -m course_lib.distributed train [--set FIELD=VALUE]
    python -m course_lib.distributed fail --rank 1 [--hang]     # what a failing rank looks like
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from .artifacts import save_tiny_bert
from .settings import artifacts_dir, by_profile
from .sharding import rank_batches
from .train import FineTuneConfig, SingleProcess

TIMEOUT_ENV = "COURSE_DIST_TIMEOUT"  # seconds for set-up and each collective call
DEFAULT_TIMEOUT_S = 600.0  # long enough for rank 0's validation pass while the others wait


# ---- Who am I: rank, world size, device --------------------------------------------------------
@dataclass(frozen=True)
class RankInfo:
    rank: int = 0  # 0 .. world_size - 1, over all machines
    world_size: int = 1  # number of processes taking part
    local_rank: int = 0  # index of this process on its machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_info() -> RankInfo:
    """This process's place in the group: from the live process group when there is one, else
    from the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), else rank 0
    of 1."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return RankInfo(torch.distributed.get_rank(), torch.distributed.get_world_size(), local)
    return RankInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), local)


def is_main() -> bool:
    """True on rank 0, the one process that logs, shows progress, evaluates and saves."""
    return rank_info().is_main


def main_print(*args, **kwargs) -> None:
    """``print`` on rank 0 only (N ranks printing the same line N times helps no one)."""
    if is_main():
        print(*args, **kwargs, flush=True)


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def backend_for(cuda: bool | None = None) -> str:
    """``"nccl"`` when the ranks have GPUs (NVIDIA's collective library), else ``"gloo"`` (CPU)."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    return "nccl" if cuda else "gloo"


def rank_device() -> torch.device:
    """The device of this rank: GPU ``LOCAL_RANK`` when there are GPUs, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", rank_info().local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def threads_per_rank() -> int | None:
    """CPU threads for each rank so that the ranks of one machine share its cores instead of
    fighting over them: ``OMP_NUM_THREADS`` when set (``launch()`` and torchrun set it), else the
    cores divided by the ranks on this machine; None outside torchrun (then ``setup()`` picks)."""
    if "RANK" not in os.environ:
        return None
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, (os.cpu_count() or 1) // local_world)


# ---- Process group: join, leave (also on error) ------------------------------------------------
@contextlib.contextmanager
def process_group(timeout_s: float | None = None):
    """Join the process group for the block, leave it afterwards; yields ``RankInfo``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1): ``init_process_group`` with gloo on CPU or nccl on
    GPU; ``timeout_s`` (default ``$COURSE_DIST_TIMEOUT`` or 600 s) bounds the set-up and every
    collective call, so a rank that never answers becomes an error instead of a hang. Outside
    torchrun it does nothing and yields rank 0 of 1, so the same program runs in one process.
    An exception is written down for ``launch()`` (rank and message), and the group is destroyed
    on the way out, also on error.
    """
    info = rank_info()
    started = False
    try:
        if info.world_size > 1 and not torch.distributed.is_initialized():
            timeout_s = timeout_s or float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
            timeout = timedelta(seconds=timeout_s)
            if torch.cuda.is_available():
                torch.cuda.set_device(rank_device())
            torch.distributed.init_process_group(backend_for(), timeout=timeout)
            started = True
        yield rank_info()
    except BaseException:
        started = False  # see the docstring: the failing rank reports before its peers notice
        raise
    finally:
        if started and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# ---- The training loop on many processes -----------------------------------------------------
class DDPRanks(SingleProcess):
    """What ``course_lib.train.fine_tune`` does differently under ``torchrun``: every method of
    ``SingleProcess`` (lesson 05), for this rank of the process group."""

    def __init__(self):
        info = rank_info()
        self.rank, self.world_size = info.rank, info.world_size

    def device(self) -> torch.device:
        return rank_device()

    def epoch_batches(self, lengths: list[int], config: FineTuneConfig, epoch: int) -> list:
        """The same length-bucketed global batches on every rank (same seed), and this rank's
        parts of each, with their loss weights (``sharding.rank_batches``)."""
        return rank_batches(
            lengths,
            config.batch_size,
            self.rank,
            self.world_size,
            config.grad_accumulation,
            seed=config.seed + epoch,
            bucket_batches=config.bucket_batches,
        )

    def wrap(self, model):
        """``DistributedDataParallel(model)`` inside a group of several processes.

        DDP copies rank 0's weights (and buffers) to every rank at the start and, during
        ``backward()``, averages each gradient over the ranks (in buckets, overlapping with the
        rest of the backward pass).
        """
        if not is_distributed():
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sync(self, model, last_part: bool):
        """DDP averages gradients only on the last part of a batch; the parts before it just add
        into ``.grad`` locally (``no_sync``), saving traffic."""
        if last_part or not hasattr(model, "no_sync"):
            return contextlib.nullcontext()
        return model.no_sync()

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over the ranks (all-reduce sum / world size)."""
        if not is_distributed():
            return value
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        return value / torch.distributed.get_world_size()

    def from_main(self, flag: bool) -> bool:
        """Rank 0's value of ``flag`` on every rank (a broadcast): decisions such as "stop
        early", which only rank 0 can take because only it evaluates, must be the same
        everywhere, or the ranks would wait for each other forever."""
        if not is_distributed():
            return flag
        box = [flag]
        torch.distributed.broadcast_object_list(box, src=0)
        return bool(box[0])


class DDPRanksWithoutLossWeights(DDPRanks):
    """A deliberate mistake, for lesson 08 to catch: ``DDPRanks`` with every loss weight set to 1.

    Each rank then backpropagates the plain mean loss of its own part, and DDP averages those
    means. That is the batch mean only when the parts are equally large: on a batch of 15 tweets
    on 2 ranks, each of rank 1's 7 tweets counts 8/7 times as much as each of rank 0's 8, so the
    run drifts away from one process on the same batches (and a rank's weight-0 stand-in, when a
    batch is smaller than the world, would count as a real example)."""

    def epoch_batches(self, lengths: list[int], config: FineTuneConfig, epoch: int) -> list:
        steps = super().epoch_batches(lengths, config, epoch)
        return [[(part, 1.0) for part, _weight in step] for step in steps]


LOSS_WEIGHTS = {"exact": DDPRanks, "ones": DDPRanksWithoutLossWeights}


# ---- Launching torchrun from Python ------------------------------------------------------------
class RankFailedError(RuntimeError):
    """A distributed launch failed; the message names the rank and its error."""

    def __init__(self, message: str, rank: int | None = None, error: str = "", output: str = ""):
        super().__init__(message)
        self.rank, self.error, self.output = rank, error, output


def torchrun_command(
    target: list[str],
    nproc: int = 2,
    monitor_interval: float = 0.2,
    log_dir: str | Path | None = None,
) -> list[str]:
    """The argument list of ``python -m torch.distributed.run`` on one machine.

    ``target`` is what follows: ``["-m", "course_lib.distributed", "train", ...]`` or
    ``["script.py", ...]``. ``--standalone`` starts a private rendezvous on a free local port
    (several launches at once do not collide); ``--max-restarts 0`` fails at once instead of
    restarting the group; torchrun checks its ranks every ``monitor_interval`` seconds, which is
    how soon a dead rank is noticed. ``log_dir`` keeps the ranks' error files for ``launch()``.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        f"--monitor-interval={monitor_interval}",
        *([f"--log-dir={log_dir}"] if log_dir else []),
        *target,
    ]


def _stream(pipe, lines: list[str], echo: bool, show) -> None:
    for raw in iter(pipe.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        line = text.split("\r")[-1] + "\n"  # a progress bar redraws with \r: keep its last state
        lines.append(line)
        if echo and (show is None or show(line)):
            print(line, end="", flush=True)
    pipe.close()


def launch(
    target: list[str],
    nproc: int = 2,
    timeout_s: float = 300.0,
    threads: int | None = None,
    echo: bool = True,
    env: dict | None = None,
    cwd: str | Path | None = None,
    show=None,
) -> str:
    """Run ``torchrun --standalone --nproc-per-node=nproc <target>`` and return its output.

    A list of arguments and ``sys.executable``, no shell: the same call works on Linux, macOS and
    Windows. Output is shown line by line while it runs (``echo``; ``show(line) -> bool`` picks
    the lines to show, all are returned). ``threads`` sets
    ``OMP_NUM_THREADS`` per rank (default: the cores shared out among the ranks). When a rank
    raises, torchrun stops the others within about a second and this raises ``RankFailedError``
    naming the rank and its error; past ``timeout_s`` the whole launch is killed.
    """
    threads = threads or max(1, (os.cpu_count() or 1) // nproc)
    full_env = {
        **os.environ,
        **(env or {}),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }
    if sys.platform == "win32":
        full_env.setdefault("USE_LIBUV", "0")  # Windows builds of torch lack libuv
    with tempfile.TemporaryDirectory(prefix="torchrun-") as log_dir:
        proc = subprocess.Popen(
            torchrun_command(target, nproc, log_dir=log_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
        )
        lines: list[str] = []
        reader = threading.Thread(
            target=_stream, args=(proc.stdout, lines, echo, show), daemon=True
        )
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reader.join(5)
            raise RankFailedError(
                f"torchrun did not finish within {timeout_s:.0f} s and was stopped",
                output="".join(lines),
            ) from None
        reader.join(5)
        output = "".join(lines)
        if code != 0:
            raise failure_from(code, output, log_dir)
    return output


_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.S)


def failure_from(exit_code: int, output: str = "", log_dir: str | Path | None = None):
    """The ``RankFailedError`` for a failed launch: the rank whose error file (written by
    ``record``, kept under torchrun's ``--log-dir``) is the oldest, with its error; else the rank
    torchrun names as the root cause (a rank killed by a signal writes no file).

    The file's own time is used, to the nanosecond: torchrun's report has whole seconds only, and
    the rank that fails first and the ranks that then lose their connection to it fail within the
    same second."""
    files = sorted(Path(log_dir).glob("*/attempt_*/*/error.json")) if log_dir else []
    if files:
        first = min(files, key=lambda f: f.stat().st_mtime_ns)
        rank = int(first.parent.name)  # the local rank; one machine, so the global rank too
        error = json.loads(first.read_text())["message"]["message"]
        return RankFailedError(
            f"rank {rank} failed: {error}", rank=rank, error=error, output=output
        )
    root = _ROOT_CAUSE.search(output)
    if root:
        rank, code = int(root.group(1)), int(root.group(2))
        return RankFailedError(
            f"rank {rank} failed with exit code {code} before it could report an error "
            f"(see its output above)",
            rank=rank,
            error=f"exit code {code}",
            output=output,
        )
    return RankFailedError(
        f"torchrun exited with code {exit_code} and reported no failing rank (see the output "
        f"above)",
        output=output,
    )


# ---- A tiny BERT for exact, fast checks --------------------------------------------------------
def tiny_bert_folder(folder: str | Path | None = None, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved like a
    pretrained model, with dropout off so that runs are comparable number for number.

    Created once in ``artifacts/tiny-bert``; the training commands load it with
    ``--set model=<folder>``.
    """
    folder = Path(folder) if folder is not None else artifacts_dir() / "tiny-bert"
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    settings = {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64}
    return save_tiny_bert(
        folder, seed, replace=False, max_position_embeddings=128, **settings
    )  # replace=False: when another process finished first, keep its (identical) folder


def max_parameter_difference(folder_a: str | Path, folder_b: str | Path) -> dict:
    """Largest absolute and relative difference between the weights of two saved models."""
    from safetensors.torch import load_file

    a = load_file(str(Path(folder_a) / "model.safetensors"))
    b = load_file(str(Path(folder_b) / "model.safetensors"))
    if a.keys() != b.keys():
        raise ValueError(f"the models differ in parameter names: {sorted(a.keys() ^ b.keys())}")
    abs_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    scale = max(float(a[k].abs().max()) for k in a)
    return {"max_abs": abs_diff, "max_rel": abs_diff / scale, "parameters": len(a)}


def throughput_settings() -> dict:
    """The ``--set`` values of a short training run for timing: lesson 05's default setting on
    the real MiniLM, a few optimizer steps of 32 tweets (5 under the full profile, 2 under the
    quick one), and tiny validation and test sets (what is timed is the optimizer steps only,
    ``train_seconds`` in the saved summary)."""
    steps = by_profile(full=5, quick=2)
    return {
        "train_size": 4 * 32 * steps,
        "max_steps": steps,
        "max_length": 64,
        "evals_per_epoch": 1,
        "val_size": 16,
        "test_size": 16,
    }


# ---- Programs for torchrun: the training command and a failing rank ---------------------------
@record
def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.distributed {train,fail}``, meant to run under ``torchrun``.

    ``train [--full] [--out DIR] [--set FIELD=VALUE ...] [--loss-weights ones]``: lesson 05's
    recipe on this process group (``course_lib.finetuned.train_and_save`` with ``DDPRanks``, or
    with the deliberate mistake ``DDPRanksWithoutLossWeights``); rank 0 tests, saves and prints
    the report. ``fail --rank R [--hang]``: rank R raises (or hangs), to see what a
    failing launch looks like.
    """
    import argparse

    from . import finetuned
    from .runtime.environment import setup

    parser = argparse.ArgumentParser(prog="python -m course_lib.distributed")
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = finetuned.command_line_options(
        sub.add_parser("train", help="lesson 05's training, DDP")
    )
    train_parser.add_argument(
        "--loss-weights",
        choices=sorted(LOSS_WEIGHTS),
        default="exact",
        help="'ones' is lesson 08's deliberate mistake (DDPRanksWithoutLossWeights)",
    )
    fail = sub.add_parser("fail", help="one rank raises: what a failing launch looks like")
    fail.add_argument("--rank", type=int, default=1)
    fail.add_argument("--hang", action="store_true", help="the rank hangs instead of raising")
    args = parser.parse_args(argv)

    setup(threads=threads_per_rank(), verbose=False)
    with process_group() as info:
        if args.command == "train":
            config = finetuned.config_from_args(args)
            start = time.perf_counter()
            ranks = LOSS_WEIGHTS[args.loss_weights]()
            _, _, folder = finetuned.train_and_save(config, args.out, ranks=ranks)
            if info.is_main:
                report = finetuned.run_report(config, folder, time.perf_counter() - start)
                print(json.dumps(report, indent=1), flush=True)
            return 0
        main_print(f"{info.world_size} ranks started; rank {args.rank} will raise")
        torch.distributed.barrier() if is_distributed() else None
        if info.rank == args.rank and args.hang:
            time.sleep(3600)  # the others' all-reduce times out after $COURSE_DIST_TIMEOUT s
        elif info.rank == args.rank:
            raise ValueError(f"a deliberate error on rank {info.rank}")
        DDPRanks().average(torch.ones(1))  # the others wait here until torchrun stops them
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
