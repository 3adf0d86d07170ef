"""Checkers for lesson 05's training exercises: the schedule and the training step.

``check_training_step`` trains a tiny one-layer BERT built in memory (no download, a fraction of
a second) once with the learner's step and once with ``train.training_step``, and compares what
they leave behind. Each returns the learner's function when it passes, else the reference.
"""

from __future__ import annotations

import torch

from .artifacts import tiny_bert_classifier
from .batching import pad_batch
from .data import LABELS
from .runtime.exercises import Case, check_exercise
from .schedules import warmup_linear_factor
from .train import make_optimizer, training_step


def check_warmup_linear_factor(fn, verbose: bool = True):
    """Checker for the schedule exercise: ``fn(step, warmup_steps, total_steps) -> float``."""

    def as_tensor(f):
        return lambda *a: torch.as_tensor(float(f(*a)), dtype=torch.float64)

    hint = "ramp s / w during warm-up, then (T - s) / (T - w), never below 0."
    cases = [
        Case(f"step {s} of {t} with {w} warm-up steps", (s, w, t), hint=hint)
        for s, w, t in [
            (0, 10, 100),
            (5, 10, 100),
            (10, 10, 100),
            (55, 10, 100),
            (100, 10, 100),
            (3, 0, 20),
        ]
    ]
    result = check_exercise(
        "warm-up + linear decay",
        as_tensor(fn),
        as_tensor(warmup_linear_factor),
        cases,
        atol=1e-9,
        verbose=verbose,
    )
    return fn if result.passed else warmup_linear_factor


def tiny_classifier_for_checks(seed: int = 0):
    """A randomly initialised one-layer BERT classifier (``artifacts.tiny_bert_classifier``:
    hidden 16, vocabulary 64, dropout off), built in memory in milliseconds: the model the
    training-step checker trains."""
    return tiny_bert_classifier(seed).train()


def _tiny_batches(n: int, batch_size: int = 6, seed: int = 0) -> list[dict]:
    """``n`` padded batches of random token ids and labels for the tiny classifier."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        lengths = torch.randint(3, 12, (batch_size,), generator=gen).tolist()
        ids = [torch.randint(1, 64, (k,), generator=gen).tolist() for k in lengths]
        labels = torch.randint(0, len(LABELS), (batch_size,), generator=gen).tolist()
        batches.append(pad_batch(ids, labels, pad_id=0))
    return batches


def _loss_as_float(value) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(
        f"the step returned {type(value).__name__}; expected the batch's loss as a number "
        "(loss.item())"
    )


def _after_steps(step_fn, what: str, steps: int = 1, grad_clip: float = 1e9, sgd: bool = False):
    """Train the tiny classifier with ``step_fn`` for ``steps`` batches; return ``what``:
    ``"loss"`` (the returned losses), ``"weights"`` (all parameters, flattened) or ``"lr"``."""
    model = tiny_classifier_for_checks()
    if sgd:  # plain SGD moves the weights by lr x gradient, so clipping shows in them
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    else:
        optimizer = make_optimizer(model, lr=0.05, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_linear_factor(s, 0, 4)
    )
    losses = []
    for batch in _tiny_batches(steps):
        losses.append(_loss_as_float(step_fn(model, batch, optimizer, scheduler, grad_clip)))
    if what == "loss":
        return torch.tensor(losses, dtype=torch.float64)
    if what == "lr":
        return torch.tensor(optimizer.param_groups[0]["lr"], dtype=torch.float64)
    return torch.cat([p.detach().flatten() for p in model.parameters()]).double()


def check_training_step(fn, verbose: bool = True):
    """Checker for the training-step exercise:
    ``fn(model, batch, optimizer, scheduler, grad_clip) -> loss``.

    It trains a tiny BERT classifier (``tiny_classifier_for_checks``) with ``fn`` and with
    ``training_step`` from the same start, and compares the losses, the weights and the learning
    rate they leave behind. Returns ``fn`` when every check passes, else ``training_step``.
    """

    cases = [
        Case(
            "one batch: the loss you return",
            ("loss",),
            hint="pass the whole batch, labels included: model(**batch).loss is the cross-entropy; "
            "return it as a number.",
        ),
        Case(
            "one batch: the weights after your step",
            ("weights",),
            hint="backward() the loss, then optimizer.step().",
        ),
        Case(
            "one batch: the learning rate after your step",
            ("lr",),
            hint="the schedule moves one notch per step: scheduler.step(), after optimizer.step().",
        ),
        Case(
            "three batches in a row: the weights",
            ("weights", 3),
            hint="(if the one-batch checks pass) gradients add up over backward() calls until "
            "optimizer.zero_grad() clears them: each step must start from zero.",
        ),
        Case(
            "one batch clipped to gradient norm 0.01 (plain SGD): the weights",
            ("weights", 1, 0.01, True),
            hint="(if the checks above pass) between backward() and optimizer.step(), scale the "
            "whole gradient down to the norm grad_clip: torch.nn.utils.clip_grad_norm_.",
        ),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    try:
        result = check_exercise(
            "one training step",
            lambda *a: _after_steps(fn, *a),
            lambda *a: _after_steps(training_step, *a),
            cases,
            atol=1e-6,
            verbose=verbose,
        )
    finally:
        torch.set_num_threads(threads)
    return fn if result.passed else training_step
