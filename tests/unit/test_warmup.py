"""Lesson 00's warm-up checkers (course_lib.warmup)."""

import pytest

from course_lib import warmup as W


def test_warmup_truths_are_the_shapes_torch_computes():
    assert W.product_shapes() == {"A @ B": (4, 6), "A @ A.T": (4, 4), "X @ W": (2, 10, 3)}
    assert W.broadcast_shapes() == {
        "scores + bias": (2, 5, 5),
        "causal & padding": (2, 5, 5),
        "column - row": (3, 4),
        "x + y": None,  # (2, 3) and (3, 2) do not broadcast
    }


@pytest.mark.parametrize(
    "checker, truth",
    [(W.check_product_shapes, W.product_shapes), (W.check_broadcast_shapes, W.broadcast_shapes)],
)
def test_warmup_checkers_accept_right_reject_wrong_and_skip_unsolved(checker, truth, capsys):
    def right():
        return {name: (list(shape) if shape else shape) for name, shape in truth().items()}

    assert checker(right) is right  # lists are accepted as shapes
    assert "[correct]" in capsys.readouterr().out

    def one_wrong():
        answers = truth()
        first = next(iter(answers))
        answers[first] = (7, 7)
        return answers

    assert checker(one_wrong) is truth
    out = capsys.readouterr().out
    assert "[not yet]" in out and "returned (7, 7)" in out and "from the" in out

    def unsolved():
        raise NotImplementedError

    assert checker(unsolved) is truth
    assert "[skipped]" in capsys.readouterr().out


def test_warmup_checker_names_a_missing_entry_and_a_shape_written_as_text(capsys):
    W.check_product_shapes(lambda: {"A @ B": "(4, 6)", "A @ A.T": (4, 4)})
    out = capsys.readouterr().out
    assert "[not yet]" in out
    assert "tuple of ints such as (4, 6), got '(4, 6)'" in out
    assert "no prediction for 'X @ W'" in out
    W.check_broadcast_shapes(lambda: [(2, 5, 5)])
    assert "return a dict of predictions, got list" in capsys.readouterr().out
