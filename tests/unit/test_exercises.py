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
