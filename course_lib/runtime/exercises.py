"""The exercise convention.

An exercise cell is tagged ``solution`` and holds the answer between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` (any number of ``#``). The learner copy (``python -m course_lib student``)
replaces those lines with ``raise NotImplementedError(...)``. The cell after it calls a checker
built on ``check_exercise``: it runs the participant's function on a few cases, compares with the
reference, says in words what is right or wrong, and returns the function the rest of the
notebook should use -- the participant's when it is right, the reference otherwise. So an
unsolved exercise never stops the notebook.

A wrong answer is described, not corrected: the checker names the case, says what kind of thing
is off (a type, a shape, how many entries, the sign, roughly how far) and gives the case's hint,
but prints the expected value only when asked (``show_answer=True``, which every lesson's
``check_*`` passes through) or from the second wrong try of the same exercise in a kernel.

The "predict, then run" convention (``compare_prediction``) lives here too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

# Wrong tries per exercise title in this kernel: the second one shows the expected values.
_wrong_tries: Counter[str] = Counter()
TRIES_BEFORE_ANSWERS = 2


def forget_tries() -> None:
    """Start counting wrong tries afresh (a new kernel does this by itself; tests call it)."""
    _wrong_tries.clear()


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
    answers_shown: bool = False  # whether the expected values were printed

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        return f"ExerciseResult({self.title!r}, {self.status})"


# ---- describing a wrong value without giving the right one -------------------------------------


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _short(x: Any, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _rounded(x: Any) -> Any:
    """Nested lists of floats rounded to 4 significant digits, for showing a small tensor."""
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return float(f"{x:.4g}") if isinstance(x, float) else x


def _how_far(got: float, expected: float) -> str:
    """``too large by less than 10 %``, ``too small by a whole-number factor``, ``has the wrong
    sign``: the direction and rough size of a miss, never the expected number itself."""
    if expected == 0 or got == 0 or math.isnan(got) or math.isinf(got):
        return "is not the answer" if expected == 0 else "is 0, the answer is not"
    sign = "" if (got > 0) == (expected > 0) else "has the wrong sign"
    ratio = abs(got / expected)
    if math.isclose(ratio, 1.0, rel_tol=1e-9):
        return sign or "is not the answer"
    way = "too large" if ratio > 1 else "too small"
    factor = max(ratio, 1 / ratio)
    whole = round(factor)
    if factor >= 1.5 and abs(factor - whole) <= 1e-6 * factor:  # exact, up to rounding
        power = math.log10(whole)
        size = (
            f"by a factor of {whole:,}"  # a unit slip (ms and s, bytes and MB) says so
            if whole >= 10 and power == int(power)
            else "by a whole-number factor"
        )
    elif factor >= 10:
        size = f"by a factor of about {10 ** round(math.log10(factor)):,}"
    elif factor < 1.01:
        size = "by less than 1 %"
    elif factor < 1.1:
        size = "by less than 10 %"
    elif factor < 2:
        size = "by less than a factor of 2"
    else:
        size = "by a factor between 2 and 10"
    return f"{sign}, and is {way} {size}" if sign else f"is {way} {size}"


def _tensor_difference(got: Any, expected: torch.Tensor, atol: float) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"returned a {type(got).__name__}, expected a torch.Tensor"
    if tuple(got.shape) != tuple(expected.shape):
        shape = tuple(got.shape)
        if got.dim() != expected.dim():
            return f"returned shape {shape}: {got.dim()} axes, the answer has {expected.dim()}"
        wrong = [i for i, (a, b) in enumerate(zip(got.shape, expected.shape)) if a != b]
        axes = (
            f"size of axis {wrong[0]} is"
            if len(wrong) == 1
            else f"sizes of axes {', '.join(map(str, wrong[:-1]))} and {wrong[-1]} are"
        )
        text = f"returned shape {shape}: the {axes} wrong"
        if sorted(got.shape) == sorted(expected.shape):
            text += " (the right sizes in the wrong order)"
        return text
    if got.dtype != expected.dtype:
        return f"returned dtype {got.dtype}, expected {expected.dtype}"
    if expected.dtype == torch.bool:
        wrong = (got != expected).sum().item()
        return None if wrong == 0 else f"{wrong} of {expected.numel()} entries differ"
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        return "the result contains NaN where the reference has none"
    if torch.isinf(got).any() and not torch.isinf(expected).any():
        return "the result contains inf where the reference has none"
    gap = (got.double() - expected.double()).abs().nan_to_num(0)
    if gap.max().item() <= atol:
        return None
    if expected.numel() == 1:
        return f"returned {got.item():.6g}, which {_how_far(got.item(), expected.item())}"
    off = int((gap > atol).sum().item())
    text = (
        f"{off} of {expected.numel()} entries differ from the reference "
        f"(largest difference {gap.max().item():.3g}, allowed {atol:g})"
    )
    ratio = _common_ratio(got.double(), expected.double(), atol)
    if ratio is not None:
        text += (
            "; every entry has the wrong sign"
            if math.isclose(ratio, -1.0, rel_tol=1e-6)
            else "; every entry is off by the same factor (a scale missing or applied twice)"
        )
    return text


def _common_ratio(got: torch.Tensor, expected: torch.Tensor, atol: float) -> float | None:
    """The factor ``got / expected`` when it is the same for every entry (a scale slip)."""
    big = expected.abs() > max(atol, 1e-12)
    if big.sum() < 2 or (got[~big].abs() > atol).any():
        return None
    ratio = got[big] / expected[big]
    spread = (ratio.max() - ratio.min()).abs().item()
    return ratio.mean().item() if spread <= 1e-6 * ratio.abs().max().item() else None


def _items_difference(got: Any, expected: Any, atol: float) -> str | None:
    """Lists, tuples and dicts: which entries are wrong, each described on its own."""
    if isinstance(expected, dict):
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            parts = [
                f"missing {missing}" if missing else "",
                f"unexpected {extra}" if extra else "",
            ]
            return "keys: " + "; ".join(p for p in parts if p)
        keys = list(expected)
    else:
        if len(got) != len(expected):
            return f"returned {_short(got)}: {_entries(len(got))}, the answer has {len(expected)}"
        keys = list(range(len(expected)))
    wrong = []
    for key in keys:
        problem = describe_difference(got[key], expected[key], atol)
        if problem:
            wrong.append(f"[{key!r}] {problem}")
    if not wrong:
        return None
    shown = "; ".join(wrong[:3]) + ("; ..." if len(wrong) > 3 else "")
    return f"returned {_short(got)}: {len(wrong)} of {_entries(len(keys))} wrong ({shown})"


def describe_difference(got: Any, expected: Any, atol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected``; otherwise what is different, in words.

    The words never contain the expected value: they give its kind (a type, a shape, a length),
    which entries differ, and for a number the direction and rough size of the miss (``is too
    large by a whole-number factor``). ``format_answer`` shows the value itself."""
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(got, expected, atol)
    if _is_number(expected) and _is_number(got):
        return None if got == expected else f"returned {got!r}, which {_how_far(got, expected)}"
    if got is None or expected is None:
        return None if got is expected else f"returned {_short(got)}, which is not the answer"
    if type(got) is not type(expected) and not (_is_number(got) and _is_number(expected)):
        return f"returned a {type(got).__name__}, expected a {type(expected).__name__}"
    if isinstance(expected, list | tuple | dict):
        return _items_difference(got, expected, atol)
    return None if got == expected else f"returned {_short(got)}, which is not the answer"


def format_answer(expected: Any) -> str:
    """The expected value as the checker shows it when asked (``show_answer=True``)."""
    if isinstance(expected, torch.Tensor):
        if expected.numel() == 1:
            return f"{expected.item():.6g}"
        if expected.numel() <= 24:
            return f"{_rounded(expected.tolist())} ({expected.dtype})"
        flat = ", ".join(f"{v:.4g}" for v in expected.flatten()[:6].tolist())
        return f"a {expected.dtype} tensor of shape {tuple(expected.shape)}, starting [{flat}, ...]"
    return repr(expected)


def check_exercise(
    title: str,
    candidate: Callable,
    reference: Callable,
    cases: list[Case],
    atol: float = 1e-5,
    verbose: bool = True,
    show_answer: bool = False,
) -> ExerciseResult:
    """Run ``candidate`` on every case, compare with ``reference``, explain, pick what to use.

    A failing case is described with its hint, not with the expected value; that is added when
    ``show_answer`` is set or from the second wrong try of ``title`` in this kernel."""
    failures: list[tuple[str, Any, Case]] = []  # (what went wrong, expected value, case)
    unsolved = False
    for case in cases:
        expected = reference(*case.args, **case.kwargs)
        try:
            got = candidate(*case.args, **case.kwargs)
        except NotImplementedError:
            unsolved = True
            break
        except Exception as exc:  # the participant's code may raise anything
            failures.append((f"raised {type(exc).__name__}: {exc}", expected, case))
            continue
        problem = describe_difference(got, expected, atol)
        if problem:
            failures.append((problem, expected, case))
    status = "unsolved" if unsolved else "wrong" if failures else "correct"
    reveal = False
    if status == "correct":
        messages = [f"all {len(cases)} checks pass."]
    elif status == "unsolved":
        messages = ["not solved yet. The rest of the notebook uses course_lib's reference version."]
    else:
        _wrong_tries[title] += 1
        reveal = show_answer or _wrong_tries[title] >= TRIES_BEFORE_ANSWERS
        messages = []
        for problem, expected, case in failures:
            text = f"{case.description}: {problem}. {case.hint}".strip()
            messages.append(
                text + (f" The answer here: {format_answer(expected)}." if reveal else "")
            )
        messages.append(
            "The rest of the notebook uses course_lib's reference version until this passes."
        )
        if not reveal:
            messages.append(
                "Stuck? Add show_answer=True to the check, then run your cell and this one "
                "again: it shows the expected values (so does a second wrong try)."
            )
    result = ExerciseResult(
        title, status, messages, candidate if status == "correct" else reference, reveal
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
