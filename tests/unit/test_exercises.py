"""The exercise conventions shared by every lesson (course_lib.runtime.exercises)."""

from course_lib.runtime.exercises import compare_prediction


def test_compare_prediction_of_a_number_says_how_far_off(capsys):
    assert "[close]" in compare_prediction("largest weight", 0.9, 0.97)
    assert "[far off]" in compare_prediction("crossover length", 100, 384, "tokens")
    assert "384 tokens" in capsys.readouterr().out


def test_compare_prediction_of_a_shape_or_a_name_checks_equality():
    assert compare_prediction("shape", (2, 5, 5), (2, 5, 5)).startswith("[as predicted]")
    assert compare_prediction("faster", "onnx int8", "pytorch fp32").startswith("[different]")


def test_an_empty_prediction_is_reported_not_an_error():
    text = compare_prediction("padding share", ..., 0.12)
    assert text.startswith("[no prediction]") and "0.12" in text
    assert compare_prediction("padding share", None, 0.12).startswith("[no prediction]")


# ---- the checker describes a wrong answer without giving the right one -------------------------

import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.runtime.exercises import (  # noqa: E402
    Case,
    check_exercise,
    describe_difference,
    format_answer,
)


@pytest.mark.parametrize(
    "got, expected, says",
    [
        (131072, 262144, "too small by a whole-number factor"),  # K forgotten beside V
        (0.064, 64.0, "too small by a factor of 1,000"),  # seconds for milliseconds
        (-3.5, 3.5, "has the wrong sign"),
        (-2.0, 3.5, "has the wrong sign, and is too small by less than a factor of 2"),
        (31, 32, "too small by less than 10 %"),
        (4.1e9, 1.3e6, "too large by a factor of about 1,000"),
        ((32, 31, 1e-4), (32, 32, 2e-4), "2 of 3 entries wrong"),
        ((4, 6, 1), (4, 6), "3 entries, the answer has 2"),
        ([4, 6], (4, 6), "returned a list, expected a tuple"),
        ({"a": 1}, {"a": 1, "b": 2}, "missing ['b']"),
        ("accepted: ['hi']", "refused: 422 unknown_field", "is not the answer"),
        ((2, 3), None, "is not the answer"),
        (torch.zeros(2, 3), torch.zeros(3, 2), "the right sizes in the wrong order"),
        (torch.zeros(2, 3), torch.zeros(2, 3, 1), "2 axes, the answer has 3"),
        (torch.ones(3, 3).tril().bool(), torch.ones(3, 3).triu().bool(), "6 of 9 entries differ"),
        (torch.arange(1.0, 7.0) * 2, torch.arange(1.0, 7.0), "off by the same factor"),
        (-torch.arange(1.0, 7.0), torch.arange(1.0, 7.0), "every entry has the wrong sign"),
        (torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.75, dtype=torch.float64), "small"),
    ],
)
def test_a_wrong_value_is_described_and_the_expected_one_is_not_shown(got, expected, says):
    text = describe_difference(got, expected)
    assert says in text
    answer = format_answer(expected)
    # short answers ("3", "()") would match any text; a wrong sign alone repeats the digits
    if len(answer) > 2 and answer not in repr(got):
        assert answer not in text, text


def test_matching_values_have_no_difference():
    assert describe_difference((4, 6), (4, 6)) is None
    assert describe_difference({"x + y": None}, {"x + y": None}) is None
    assert describe_difference(torch.ones(3) + 1e-7, torch.ones(3)) is None
    assert describe_difference(torch.ones(3) + 1e-3, torch.ones(3), atol=1e-2) is None


def _doubled(x):
    return 2 * x


def _cases():
    return [
        Case("x = 7", (7,), hint="multiply by three."),
        Case("x = 11", (11,), hint="multiply by three."),
    ]


def test_first_wrong_try_gives_the_hint_and_no_expected_value(capsys):
    result = check_exercise("triple", _doubled, lambda x: 3 * x, _cases())
    out = capsys.readouterr().out
    assert result.status == "wrong" and result.function(2) == 6 and not result.answers_shown
    assert "x = 7: returned 14, which is too small by less than a factor of 2" in out
    assert "multiply by three" in out and "show_answer=True" in out
    assert "21" not in out and "33" not in out


def test_the_second_wrong_try_or_show_answer_gives_the_expected_values(capsys):
    check_exercise("triple", _doubled, lambda x: 3 * x, _cases())
    capsys.readouterr()
    second = check_exercise("triple", _doubled, lambda x: 3 * x, _cases())
    out = capsys.readouterr().out
    assert second.answers_shown and "The answer here: 21." in out and "The answer here: 33." in out

    asked = check_exercise("another", _doubled, lambda x: 3 * x, _cases(), show_answer=True)
    assert asked.answers_shown and "The answer here: 21." in capsys.readouterr().out


def test_only_wrong_tries_count_and_each_exercise_counts_its_own(capsys):
    def unsolved(x):
        raise NotImplementedError

    for _ in range(3):  # skipping or solving is not a wrong try
        check_exercise("triple", unsolved, lambda x: 3 * x, _cases())
        check_exercise("triple", lambda x: 3 * x, lambda x: 3 * x, _cases())
    check_exercise("double", lambda x: x, _doubled, _cases())  # another exercise's wrong try
    capsys.readouterr()
    first = check_exercise("triple", _doubled, lambda x: 3 * x, _cases())
    assert not first.answers_shown and "21" not in capsys.readouterr().out


def test_an_exception_is_reported_and_the_answer_still_withheld(capsys):
    def broken(x):
        raise ValueError("nope")

    result = check_exercise("triple", broken, lambda x: 3 * x, _cases())
    out = capsys.readouterr().out
    assert result.status == "wrong" and "raised ValueError: nope" in out and "21" not in out


def test_a_small_tensor_answer_is_shown_rounded_and_a_large_one_by_shape():
    assert format_answer(torch.tensor([1 / 3, 2.0])) == "[0.3333, 2.0] (torch.float32)"
    assert "shape (10, 10)" in format_answer(torch.zeros(10, 10))
    assert format_answer(torch.tensor(0.25)) == "0.25"
