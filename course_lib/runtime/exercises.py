"""The exercise convention.

An exercise cell is tagged ``solution`` and holds the answer between ``# BEGIN SOLUTION`` and
``# END SOLUTION``. The student version (``python -m course_lib student``) replaces those lines
with ``raise NotImplementedError(...)``. The cell after it calls a checker built on
``check_exercise``: it runs the participant's function on a few cases, compares with the
reference, says in words what is right or wrong, and returns the function the rest of the
notebook should use -- the participant's when it is right, the reference otherwise. So an
unsolved exercise never stops the notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Case:
    """One test input: ``args`` for the function, and a ``hint`` shown when it fails."""

    description: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    hint: str = ""


@dataclass
class ExerciseResult:
    title: str
    status: str  # "correct" | "wrong" | "unsolved"
    messages: list[str]
    function: Callable

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        return f"ExerciseResult({self.title!r}, {self.status})"


def describe_difference(got: Any, expected: Any, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected``; otherwise what is different, in words."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"returned a {type(got).__name__}, expected a torch.Tensor"
        if tuple(got.shape) != tuple(expected.shape):
            return f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        if got.dtype != expected.dtype:
            return f"returned dtype {got.dtype}, expected {expected.dtype}"
        if expected.dtype == torch.bool:
            wrong = (got != expected).sum().item()
            return None if wrong == 0 else f"{wrong} of {expected.numel()} entries differ"
        if torch.isnan(got).any() and not torch.isnan(expected).any():
            return "the result contains NaN where the reference has none"
        if torch.isinf(got).any() and not torch.isinf(expected).any():
            return "the result contains inf where the reference has none"
        diff = (got.double() - expected.double()).abs().nan_to_num(0).max().item()
        return (
            None
            if diff <= atol
            else f"max abs difference from the reference is {diff:.3g} (allowed {atol:g})"
        )
    return None if got == expected else f"returned {got!r}, expected {expected!r}"


def check_exercise(
    title: str,
    candidate: Callable,
    reference: Callable,
    cases: list[Case],
    atol: float = 1e-5,
    verbose: bool = True,
) -> ExerciseResult:
    """Run ``candidate`` on every case, compare with ``reference``, explain, pick what to use."""
    messages: list[str] = []
    status = "correct"
    for case in cases:
        expected = reference(*case.args, **case.kwargs)
        try:
            got = candidate(*case.args, **case.kwargs)
        except NotImplementedError:
            status = "unsolved"
            messages = [
                "not solved yet. The rest of the notebook uses course_lib's reference version."
            ]
            break
        except Exception as exc:  # the participant's code may raise anything
            status = "wrong"
            messages.append(
                f"{case.description}: raised {type(exc).__name__}: {exc}. {case.hint}".strip()
            )
            continue
        problem = describe_difference(got, expected, atol)
        if problem:
            status = "wrong"
            messages.append(f"{case.description}: {problem}. {case.hint}".strip())
    if status == "correct":
        messages = [f"all {len(cases)} checks pass."]
    elif status == "wrong":
        messages.append(
            "The rest of the notebook uses course_lib's reference version until this passes."
        )
    result = ExerciseResult(
        title, status, messages, candidate if status == "correct" else reference
    )
    if verbose:
        mark = {"correct": "[correct]", "wrong": "[not yet]", "unsolved": "[skipped]"}[status]
        print(f"{mark} {title}")
        for m in messages:
            print(f"  - {m}")
    return result


def compare_prediction(name: str, predicted: Any, measured: Any, unit: str = "") -> str:
    """Put a learner's prediction next to what the cell measured, and say how far apart they are.

    The "predict, then run" convention: a cell asks for a prediction (a number, a shape, which is
    faster) before the cell that measures it; that cell calls this. Numbers are compared as a
    ratio, anything else (a shape, a name) for equality. Nothing is asserted: an empty prediction
    (``None`` or ``...``) is reported as such and the lesson carries on. Prints the comparison
    and returns it.
    """
    suffix = f" {unit}" if unit else ""
    if predicted is None or predicted is Ellipsis:
        text = (
            f"[no prediction] {name}: measured {measured}{suffix}. Write your guess in the cell "
            f"above first, then run both cells again."
        )
    elif isinstance(predicted, int | float) and isinstance(measured, int | float):
        ratio = float(measured) / predicted if predicted else float("inf")
        close = 0.8 <= ratio <= 1.25
        text = (
            f"[{'close' if close else 'far off'}] {name}: you predicted {predicted:g}{suffix}, "
            f"measured {measured:g}{suffix} ({ratio:.2g}x your guess)"
        )
    else:
        same = predicted == measured or str(predicted) == str(measured)
        text = (
            f"[{'as predicted' if same else 'different'}] {name}: you predicted {predicted!r}, "
            f"measured {measured!r}"
        )
    print(text)
    return text
