"""Who trains on which examples under DDP, and what the batch and learning rate do when the
world grows (lesson 08).

Pure arithmetic, no processes: ``batch_parts`` cuts one global batch into this rank's strided
parts with their loss weights (lesson 05's ``batching.strided_parts``, shared out over the
ranks); ``rank_batches`` does it for a whole epoch of lesson 05's length-bucketed batches (every
example once per epoch, over the ranks); ``scaled_hyperparameters`` is the linear (and
square-root) scaling rule. ``course_lib.distributed.DDPRanks`` uses them; lesson 08's two
exercise checkers live here too.
"""

from __future__ import annotations

import math

from .batching import length_bucketed_batches, strided_parts
from .runtime.exercises import Case, check_exercise


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
    parts = strided_parts(batch, world_size * accumulation_steps)
    return [(indices, world_size * share) for indices, share in parts[rank::world_size]]


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
    batch_per_rank: int,
    lr: float,
    world_size: int,
    base_world_size: int = 1,
    train_examples: int | None = None,
) -> dict:
    """A recipe tuned on ``base_world_size`` ranks, run on ``world_size`` with the same batch per
    rank: the global batch grows ``k = world_size / base_world_size`` times, an epoch has ``k``
    times fewer steps, and the *linear scaling rule* (Goyal et al. 2017, for SGD; with warm-up)
    multiplies the learning rate by ``k``; for Adam a gentler ``sqrt(k)`` is common.
    Returns ``{"global_batch", "steps_factor", "lr_linear", "lr_sqrt"}``, and
    ``"steps_per_epoch"`` (``ceil(train_examples / global_batch)``) when ``train_examples`` is
    given."""
    if world_size < 1 or base_world_size < 1:
        raise ValueError(f"world sizes must be >= 1, got {world_size} and {base_world_size}")
    k = world_size / base_world_size
    scaled = {
        "global_batch": batch_per_rank * world_size,
        "steps_factor": 1 / k,
        "lr_linear": lr * k,
        "lr_sqrt": lr * math.sqrt(k),
    }
    if train_examples is not None:
        scaled["steps_per_epoch"] = math.ceil(train_examples / scaled["global_batch"])
    return scaled


# ---- Exercise checkers (lesson 08) -------------------------------------------------------------
def check_rank_share(fn, verbose: bool = True):
    """Checker for "which examples does a rank see, and with which loss weight":
    ``fn(batch, rank, world_size) -> (indices, weight)``, rank ``rank``'s part of ``batch`` and the
    weight of its mean loss (no accumulation; ``batch_parts(batch, rank, world_size)[0]``).
    Returns the function the notebook should use (the participant's once it is right)."""

    def reference(batch, rank, world_size):
        indices, weight = batch_parts(batch, rank, world_size)[0]
        return indices, weight

    def tidy(share):  # compare lists of ints and weights rounded far below any real difference
        try:
            indices, weight = share
            indices = [int(i) for i in indices]
        except (TypeError, ValueError):
            raise ValueError(f"expected a pair (indices, weight), got {share!r}") from None
        return indices, round(float(weight), 9)

    def candidate(*args):
        return tidy(fn(*args))

    hint = (
        "DDP takes the plain mean over the ranks of (weight x mean loss of the part); write the "
        "mean over the whole batch as a sum over the parts and compare the two term by term."
    )
    cases = [
        Case("rank 1 of 2, batch of 8 (even)", (list(range(100, 108)), 1, 2), hint=hint),
        Case("rank 0 of 2, batch of 7", (list(range(10, 17)), 0, 2), hint=hint),
        Case("rank 1 of 2, batch of 7", (list(range(10, 17)), 1, 2), hint=hint),
        Case("rank 2 of 4, batch of 10", (list(range(10, 20)), 2, 4), hint=hint),
        Case("rank 0 of 1 sees everything", ([5, 3, 9], 0, 1), hint=hint),
        Case(
            "rank 3 of 4, batch of 3 (nothing left for it)",
            ([7, 8, 9], 3, 4),
            hint="a rank with no example of its own still joins the all-reduce: the batch's "
            "first example, with a weight that makes it count for nothing.",
        ),
    ]
    result = check_exercise(
        "which examples a rank sees, and their weight",
        candidate,
        lambda *args: tidy(reference(*args)),
        cases,
        verbose=verbose,
    )
    return fn if result.passed else reference


def check_scaled_hyperparameters(fn, verbose: bool = True):
    """Checker for the scaling exercise: ``fn(batch_per_rank, lr, world_size, train_examples)``
    returns ``(global_batch, steps_per_epoch, lr)`` for a recipe tuned on 1 rank run on
    ``world_size`` ranks with the same batch per rank, the learning rate by the linear rule."""

    def reference(batch_per_rank, lr, world_size, train_examples):
        s = scaled_hyperparameters(batch_per_rank, lr, world_size, train_examples=train_examples)
        return s["global_batch"], s["steps_per_epoch"], s["lr_linear"]

    def tidy(out):
        global_batch, steps, lr = out
        return int(global_batch), int(steps), float(f"{float(lr):.9g}")

    hint = (
        "one optimizer step now takes batch_per_rank examples on every rank; an epoch still has "
        "to cover every example (a last, smaller step counts too); the rule keeps the learning "
        "rate in proportion to the global batch."
    )
    cases = [
        Case("1 rank, 1,000 examples", (32, 1e-4, 1, 1000), hint=hint),
        Case("2 ranks, 1,000 examples", (32, 1e-4, 2, 1000), hint=hint),
        Case("8 ranks, 24,663 examples", (16, 5e-5, 8, 24663), hint=hint),
    ]
    result = check_exercise(
        "batch, steps and learning rate when the world grows",
        lambda *args: tidy(fn(*args)),
        lambda *args: tidy(reference(*args)),
        cases,
        verbose=verbose,
    )
    return fn if result.passed else reference
