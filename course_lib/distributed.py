"""Scaling out: the lesson-05 training loop on one process or many (DDP under ``torchrun``).

``torchrun --nproc-per-node=N`` starts N copies (*ranks*) of one program. Each holds the whole
model and takes its share of every global batch; ``DistributedDataParallel`` averages the
gradients over the ranks (all-reduce) before the optimizer step, so all copies take the step one
process would take on the whole batch. Here: ``process_group()`` (gloo on CPU, nccl on GPU,
timeouts, left also on error, errors recorded per rank); rank-0 helpers and collectives;
``launch()`` (torchrun from Python, no shell, live output, a ``RankFailedError`` naming the
failing rank); ``tiny_bert_folder()`` for exact checks. Who trains on which examples
(``batch_parts``, ``rank_batches``), the scaling rule and the lesson's exercise checkers live in
``course_lib.sharding`` and are offered here under the same names.
``python -m course_lib.distributed throughput`` times a few real training steps;
``python -m course_lib.distributed fail --rank 1 [--hang]`` shows a failing rank.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from .settings import artifacts_dir
from .sharding import batch_parts as batch_parts  # re-exported: train.py and lesson 08 use them
from .sharding import check_rank_share as check_rank_share
from .sharding import check_scaled_hyperparameters as check_scaled_hyperparameters
from .sharding import rank_batches as rank_batches
from .sharding import scaled_hyperparameters as scaled_hyperparameters

ERROR_DIR_ENV = "COURSE_DIST_ERROR_DIR"  # where each rank writes its error, for the launcher
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


# ---- Process group: join, leave (also on error), report a failure ------------------------------
def _record_error(exc: BaseException) -> None:
    """Write this rank's error where ``launch()`` looks for it (when launched by it)."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder:
        return
    info = rank_info()
    record = {
        "rank": info.rank,
        "local_rank": info.local_rank,
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
        "time": time.time(),
    }
    Path(folder, f"rank{info.rank}.json").write_text(json.dumps(record))


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
    except BaseException as exc:
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            _record_error(exc)
        raise
    finally:
        if started and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# ---- Collectives the training loop needs -------------------------------------------------------
def wrap_model(model):
    """``DistributedDataParallel(model)`` inside a group of several processes, else ``model``.

    DDP copies rank 0's weights to every rank at the start and, during ``backward()``, averages
    each gradient over the ranks (in buckets, overlapping with the rest of the backward pass).
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def average(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over the ranks (all-reduce sum / world size); itself in one process."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    torch.distributed.all_reduce(value)
    return value / torch.distributed.get_world_size()


def from_main(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (a broadcast): decisions such as "stop early",
    which only rank 0 can take because only it evaluates, must be the same everywhere, or the
    ranks would wait for each other forever."""
    if not is_distributed():
        return flag
    box = [flag]
    torch.distributed.broadcast_object_list(box, src=0)
    return bool(box[0])


def gradient_sync(model, sync: bool):
    """Context for one backward pass: DDP averages gradients only when ``sync`` (the last part of a
    batch); the parts before it just add into ``.grad`` locally (``no_sync``), saving traffic."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


# ---- Launching torchrun from Python ------------------------------------------------------------
class RankFailedError(RuntimeError):
    """A distributed launch failed; the message names the rank and its error."""

    def __init__(self, message: str, rank: int | None = None, error: str = "", output: str = ""):
        super().__init__(message)
        self.rank, self.error, self.output = rank, error, output


def torchrun_command(target: list[str], nproc: int = 2, monitor_interval: float = 0.2) -> list[str]:
    """The argument list of ``python -m torch.distributed.run`` on one machine.

    ``target`` is what follows: ``["-m", "course_lib.train", ...]`` or ``["script.py", ...]``.
    ``--standalone`` starts a private rendezvous on a free local port (several launches at once do
    not collide); ``--max-restarts 0`` fails at once instead of restarting the group.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        f"--monitor-interval={monitor_interval}",
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
    with tempfile.TemporaryDirectory(prefix="ranks-") as errors:
        full_env = {
            **os.environ,
            **(env or {}),
            ERROR_DIR_ENV: errors,
            "OMP_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        if sys.platform == "win32":
            full_env.setdefault("USE_LIBUV", "0")  # Windows builds of torch lack libuv
        proc = subprocess.Popen(
            torchrun_command(target, nproc),
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
            raise failure_from(errors, code, output)
        return output


def failure_from(error_dir: str | Path, exit_code: int, output: str = "") -> RankFailedError:
    """The ``RankFailedError`` for a failed launch: the earliest error a rank wrote down."""
    records = [json.loads(p.read_text()) for p in Path(error_dir).glob("rank*.json")]
    root = re.search(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", output, re.S)
    if not records and root:  # it died before process_group() could write its error down
        rank, code = int(root.group(1)), int(root.group(2))
        return RankFailedError(
            f"rank {rank} failed with exit code {code} before it could report an error "
            f"(see its output above)",
            rank=rank,
            error=f"exit code {code}",
            output=output,
        )
    if not records:
        return RankFailedError(
            f"torchrun exited with code {exit_code} and no rank reported an error "
            f"(a rank may have been killed; see the output above)",
            output=output,
        )
    first = min(records, key=lambda r: r["time"])
    return RankFailedError(
        f"rank {first['rank']} failed: {first['error']}",
        rank=first["rank"],
        error=first["error"],
        output=output,
    )


# ---- A tiny BERT for exact, fast checks --------------------------------------------------------
def tiny_bert_folder(folder: str | Path | None = None, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved like a
    pretrained model, with dropout off so that runs are comparable number for number.

    Created once in ``artifacts/tiny-bert``; ``course_lib.train`` loads it with
    ``--set model=<folder>``.
    """
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from .models import resolve_model

    folder = Path(folder) if folder is not None else artifacts_dir() / "tiny-bert"
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        classifier_dropout=0.0,
        num_labels=3,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-bert.", dir=folder.parent))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, folder)  # atomic: a reader never sees half a model
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


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


# ---- Workers for torchrun: a throughput probe and a failing rank -------------------------------
def throughput_worker(
    model: str = "minilm",
    steps: int = 6,
    batch_size: int = 32,
    train_size: int = 512,
    max_length: int = 64,
) -> dict:
    """Time ``steps`` optimizer steps of the real lesson-05 loop (``fine_tune``) in this process
    group; returns (on every rank) examples per second of training over the measured steps."""
    from .data import load_split, subsample
    from .train import default_config, fine_tune

    texts, labels = load_split("train")
    texts, labels = subsample(texts, labels, train_size, seed=0)
    config = default_config(
        model=model, batch_size=batch_size, max_length=max_length, evals_per_epoch=1
    )
    # a tiny validation set: the one evaluation at the end is not what is measured
    result = fine_tune(
        texts, labels, texts[:8], labels[:8], config, progress=False, max_steps=steps
    )
    trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    return {
        "world_size": rank_info().world_size,
        "threads_per_rank": torch.get_num_threads(),
        "trainable_parameters": trainable,  # the gradients the all-reduce carries every step
        "steps": len(result.history),
        "examples": len(result.history) * batch_size,
        "train_seconds": round(result.train_seconds, 2),
        "examples_per_s": round(len(result.history) * batch_size / result.train_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.distributed {throughput,fail}`` (meant to run under torchrun)."""
    import argparse

    from .runtime.environment import setup

    parser = argparse.ArgumentParser(prog="python -m course_lib.distributed")
    sub = parser.add_subparsers(dest="command", required=True)
    tp = sub.add_parser("throughput", help="time a few training steps of the lesson-05 loop")
    tp.add_argument("--model", default="minilm")
    tp.add_argument("--steps", type=int, default=6)
    tp.add_argument("--batch-size", type=int, default=32)
    tp.add_argument("--max-length", type=int, default=64)
    tp.add_argument("--out", default=None, help="JSON file rank 0 writes the result to")
    fail = sub.add_parser("fail", help="one rank raises: what a failing launch looks like")
    fail.add_argument("--rank", type=int, default=1)
    fail.add_argument("--hang", action="store_true", help="the rank hangs instead of raising")
    args = parser.parse_args(argv)

    setup(threads=threads_per_rank(), verbose=False)
    with process_group() as info:
        if args.command == "throughput":
            report = throughput_worker(
                args.model,
                args.steps,
                args.batch_size,
                4 * args.steps * args.batch_size,
                args.max_length,
            )
            main_print(json.dumps(report))
            if args.out and info.is_main:
                Path(args.out).write_text(json.dumps(report))
        else:
            main_print(f"{info.world_size} ranks started; rank {args.rank} will raise")
            torch.distributed.barrier() if is_distributed() else None
            if info.rank == args.rank and args.hang:
                time.sleep(3600)  # the others' all-reduce times out after $COURSE_DIST_TIMEOUT s
            elif info.rank == args.rank:
                raise ValueError(f"a deliberate error on rank {info.rank}")
            average(torch.ones(1))  # the others wait here until torchrun stops them
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
