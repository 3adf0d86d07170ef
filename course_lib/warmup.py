"""Lesson 00's warm-up: predict the shapes of matrix products and broadcasts, the two operations
lesson 01 is built from. The true shapes are computed by doing each operation on zero tensors.
"""

from __future__ import annotations

import torch

from .runtime.exercises import Case, check_exercise

# Lesson 01 is built from matrix products and broadcasting. Lesson 00's warm-up asks for the
# shapes they produce; these are the truths, computed by doing the operation on zero tensors.

PRODUCT_OPERANDS = {"A": (4, 8), "B": (8, 6), "X": (2, 10, 8), "W": (8, 3)}
_PRODUCTS = {
    "A @ B": (
        lambda t: t["A"] @ t["B"],
        "a product (m, k) @ (k, n) has shape (m, n): rows from the left, columns from the right; "
        "the shared k is summed away.",
    ),
    "A @ A.T": (
        lambda t: t["A"] @ t["A"].T,
        ".T swaps the two axes of A; then apply the rule (m, k) @ (k, n) -> (m, n).",
    ),
    "X @ W": (
        lambda t: t["X"] @ t["W"],
        "@ multiplies the LAST two axes; an axis in front of them is a batch of matrices and "
        "stays as it is.",
    ),
}

BROADCAST_OPERANDS = {
    "scores": (2, 5, 5),
    "bias": (5,),
    "causal": (5, 5),
    "padding": (2, 1, 5),
    "column": (3, 1),
    "row": (4,),
    "x": (2, 3),
    "y": (3, 2),
}
_BROADCAST_RULE = (
    "line the shapes up from the RIGHT; a missing axis counts as size 1, a size-1 axis is "
    "stretched to the other size, and two different sizes that are both above 1 cannot be matched."
)
_BROADCASTS = {
    "scores + bias": (lambda t: t["scores"] + t["bias"], _BROADCAST_RULE),
    "causal & padding": (lambda t: t["causal"].bool() & t["padding"].bool(), _BROADCAST_RULE),
    "column - row": (lambda t: t["column"] - t["row"], _BROADCAST_RULE),
    "x + y": (lambda t: t["x"] + t["y"], _BROADCAST_RULE + " Write None when they cannot."),
}


def _result_shape(questions: dict, operands: dict, name: str) -> tuple | None:
    tensors = {k: torch.zeros(shape) for k, shape in operands.items()}
    try:
        return tuple(questions[name][0](tensors).shape)
    except RuntimeError:  # the shapes do not fit together
        return None


def product_shapes() -> dict[str, tuple]:
    """The true shapes of the warm-up's matrix products (operands in ``PRODUCT_OPERANDS``)."""
    return {name: _result_shape(_PRODUCTS, PRODUCT_OPERANDS, name) for name in _PRODUCTS}


def broadcast_shapes() -> dict[str, tuple | None]:
    """The true shapes of the warm-up's broadcasts (``None`` where they do not broadcast)."""
    return {name: _result_shape(_BROADCASTS, BROADCAST_OPERANDS, name) for name in _BROADCASTS}


def _prediction(fn, name: str):
    predicted = fn()
    if not isinstance(predicted, dict):
        raise TypeError(f"return a dict of predictions, got {type(predicted).__name__}")
    if name not in predicted:
        raise ValueError(f"no prediction for {name!r}; the dict needs one entry per question")
    answer = predicted[name]
    if answer is None:
        return None
    if isinstance(answer, str) or not all(isinstance(n, int) for n in answer):
        raise TypeError(f"write the shape as a tuple of ints such as (4, 6), got {answer!r}")
    return tuple(answer)


def _check_predictions(title, fn, questions, truth, verbose):

    cases = [Case(name, (name,), hint=hint) for name, (_, hint) in questions.items()]
    result = check_exercise(
        title,
        lambda name: _prediction(fn, name),
        lambda name: truth()[name],
        cases,
        verbose=verbose,
    )
    return fn if result.passed else truth


def check_product_shapes(fn, verbose: bool = True):
    """Checker for lesson 00's first warm-up: ``fn() -> {"A @ B": shape, ...}``, the predicted
    shapes of three matrix products. Returns ``fn`` when every shape is right, else
    ``product_shapes``."""
    return _check_predictions("shapes of matrix products", fn, _PRODUCTS, product_shapes, verbose)


def check_broadcast_shapes(fn, verbose: bool = True):
    """Checker for lesson 00's second warm-up: ``fn() -> {"scores + bias": shape or None, ...}``.
    Returns ``fn`` when every prediction is right, else ``broadcast_shapes``."""
    return _check_predictions(
        "shapes after broadcasting", fn, _BROADCASTS, broadcast_shapes, verbose
    )
