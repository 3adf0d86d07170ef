"""Scaling out: the lesson-05 training loop on one process or many (DDP under ``torchrun``).

``torchrun --nproc-per-node=N`` starts N copies (*ranks*) of one program. Each holds the whole
model and takes its share of every global batch; ``DistributedDataParallel`` averages the
gradients over the ranks (all-reduce) before the optimizer step, so all copies take the step one
process would take on the whole batch. Here: ``process_group()`` (gloo on CPU, nccl on GPU,
timeouts, left also on error, errors recorded per rank); ``batch_parts`` / ``rank_batches`` (the
length-bucketed batches cut into per-rank parts with loss weights, each example once per epoch);
rank-0 helpers and collectives; ``launch()`` (torchrun from Python, no shell, live output, a
``RankFailedError`` naming the failing rank); ``tiny_bert_folder()`` for exact checks; the
lesson's exercise checkers. ``python -m course_lib.distributed throughput`` times a few real
training steps; ``python -m course_lib.distributed fail --rank 1 [--hang]`` shows a failing rank.
"""

from __future__ import annotations

import contextlib
import json
import math
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


# ---- The sampler: who sees which examples ------------------------------------------------------
def batch_parts(
    batch: list[int], rank: int = 0, world_size: int = 1, accumulation_steps: int = 1
) -> list[tuple[list[int], float]]:
    """This rank's parts of one global batch, with their loss weights: ``[(indices, weight), ...]``.

    The batch is cut into ``P = world_size * accumulation_steps`` strided parts: part ``k`` is
    ``batch[k::P]`` (the batch is length-sorted, so every part gets short and long examples and no
    rank waits for a long one). Rank ``r`` gets parts ``r, r + world_size, ...``: one per
    accumulation step. The weight of a part of ``n_k`` of the batch's ``n`` examples is

    .. math:: w_k = \\text{world\\_size} \\cdot n_k / n

    so that DDP's average over ranks of ``sum_k w_k * mean-loss_k`` is the mean loss over the whole
    batch, also when the parts differ in size. When a batch has fewer examples than parts (the last
    one of an epoch), an empty part is replaced by the batch's first example with weight 0: the
    rank still takes part in the all-reduce, and no example counts twice.
    """
    if world_size < 1 or not 0 <= rank < world_size or accumulation_steps < 1:
        raise ValueError(
            f"need 0 <= rank < world_size and accumulation_steps >= 1, got rank {rank}, "
            f"world_size {world_size}, accumulation_steps {accumulation_steps}"
        )
    if len(batch) == 0:
        raise ValueError("batch_parts() got an empty batch; expected at least one index")
    n, p = len(batch), world_size * accumulation_steps
    parts = []
    for a in range(accumulation_steps):
        share = list(batch[rank + a * world_size :: p])
        if share:
            parts.append((share, world_size * len(share) / n))
        else:
            parts.append(([batch[0]], 0.0))
    return parts


def rank_batches(
    lengths: list[int],
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    accumulation_steps: int = 1,
    seed: int = 0,
    bucket_batches: int = 50,
) -> list[list[tuple[list[int], float]]]:
    """One epoch for one rank: for every optimizer step, ``batch_parts`` of the global batch.

    Every rank builds the same length-bucketed global batches (same seed, from
    ``course_lib.batching.length_bucketed_batches``) and takes its parts, so all ranks take the same
    number of steps and, over the ranks, every example is used exactly once per epoch.
    """
    from .batching import length_bucketed_batches

    if batch_size < world_size * accumulation_steps:
        raise ValueError(
            f"batch_size {batch_size} cannot be split into world_size x accumulation_steps = "
            f"{world_size} x {accumulation_steps} parts; use a batch of at least "
            f"{world_size * accumulation_steps}"
        )
    batches = length_bucketed_batches(
        lengths, batch_size, shuffle=True, seed=seed, bucket_batches=bucket_batches
    )
    return [batch_parts(b, rank, world_size, accumulation_steps) for b in batches]


def scaled_hyperparameters(
    batch_per_rank: int, lr: float, world_size: int, base_world_size: int = 1
) -> dict:
    """A recipe tuned on ``base_world_size`` ranks, run on ``world_size`` with the same batch per
    rank: the global batch grows ``k = world_size / base_world_size`` times, an epoch has ``k``
    times fewer steps, and the *linear scaling rule* (Goyal et al. 2017, for SGD; with warm-up)
    multiplies the learning rate by ``k``; for Adam a gentler ``sqrt(k)`` is common.
    Returns ``{"global_batch", "steps_factor", "lr_linear", "lr_sqrt"}``."""
    if world_size < 1 or base_world_size < 1:
        raise ValueError(f"world sizes must be >= 1, got {world_size} and {base_world_size}")
    k = world_size / base_world_size
    return {
        "global_batch": batch_per_rank * world_size,
        "steps_factor": 1 / k,
        "lr_linear": lr * k,
        "lr_sqrt": lr * math.sqrt(k),
    }


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
    return {
        "world_size": rank_info().world_size,
        "threads_per_rank": torch.get_num_threads(),
        "steps": len(result.history),
        "examples": len(result.history) * batch_size,
        "train_seconds": round(result.train_seconds, 2),
        "examples_per_s": round(len(result.history) * batch_size / result.train_seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.distributed {throughput,fail}`` (meant to run under torchrun)."""
    import argparse

    from .tooling.environment import setup

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


# ---- Exercise checkers (lesson 08) -------------------------------------------------------------
def check_rank_indices(fn, verbose: bool = True):
    """Checker for "which examples does a rank see": ``fn(batch, rank, world_size) -> list[int]``,
    the indices of ``batch`` that rank ``rank`` trains on (no accumulation)."""
    from .tooling.exercises import Case, check_exercise

    def reference(batch, rank, world_size):
        return list(batch[rank::world_size])

    hint = "the parts are strided: rank r takes the examples at positions r, r + world_size, ..."
    cases = [
        Case("rank 1 of 2, batch of 8", (list(range(100, 108)), 1, 2), hint=hint),
        Case("rank 0 of 2, batch of 8", (list(range(100, 108)), 0, 2), hint=hint),
        Case("rank 2 of 4, batch of 10 (uneven)", (list(range(10, 20)), 2, 4), hint=hint),
        Case("rank 0 of 1 sees everything", ([5, 3, 9], 0, 1), hint=hint),
        Case("rank 3 of 4, batch of 3: nothing", ([7, 8, 9], 3, 4), hint=hint),
    ]
    result = check_exercise(
        "which examples does a rank see", lambda *a: list(fn(*a)), reference, cases, verbose=verbose
    )
    return result.function


def check_scaled_hyperparameters(fn, verbose: bool = True):
    """Checker for the scaling exercise: ``fn(batch_per_rank, lr, world_size)`` returns
    ``(global_batch, lr_linear)`` when a recipe tuned on 1 rank runs on ``world_size`` ranks."""
    from .tooling.exercises import Case, check_exercise

    def reference(batch_per_rank, lr, world_size):
        s = scaled_hyperparameters(batch_per_rank, lr, world_size)
        return torch.tensor([s["global_batch"], s["lr_linear"]], dtype=torch.float64)

    def candidate(*a):
        out = fn(*a)
        return torch.tensor([float(x) for x in out], dtype=torch.float64)

    hint = (
        "each rank takes batch_per_rank examples, so one step sees world_size times more; "
        "the linear rule scales the learning rate by the same factor."
    )
    cases = [
        Case("1 rank", (32, 1e-4, 1), hint=hint),
        Case("2 ranks", (32, 1e-4, 2), hint=hint),
        Case("8 ranks", (16, 5e-5, 8), hint=hint),
    ]
    result = check_exercise(
        "batch and learning rate when the world grows",
        candidate,
        reference,
        cases,
        atol=1e-12,
        verbose=verbose,
    )
    if result.passed:
        return fn
    return lambda b, lr, w: (b * w, scaled_hyperparameters(b, lr, w)["lr_linear"])


if __name__ == "__main__":
    raise SystemExit(main())
