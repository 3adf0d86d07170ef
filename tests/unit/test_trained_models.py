"""The models the session trains (under the suite's profile, quick by default) still learn: a
shorter run must not hide a broken training loop.

``finetuned_model_folder`` and ``gpt_model_folder`` (root conftest.py) train lesson 05's and lesson
09's models once per session, with the settings the lessons use; the notebooks and the browser
tests reuse them.
"""

import math

import pytest

from course_lib import artifacts, data, metrics

pytestmark = [pytest.mark.slow]


def test_the_fine_tuned_model_beats_the_majority_class_by_a_clear_margin(finetuned_model_folder):
    summary = artifacts.read_training_summary(finetuned_model_folder)
    train_labels = data.load_split("train")[1]
    test_labels = data.load_split("test")[1]
    majority = max(set(train_labels), key=train_labels.count)
    floor = metrics.macro_f1(test_labels, [majority] * len(test_labels))
    assert floor < 0.25  # predicting one class: about a third of one class's F1
    assert summary["test"]["macro_f1"] >= 0.60, summary["test"]
    assert summary["steps"] >= 50 and summary["config"]["train_size"] >= 2000


def test_the_fine_tuned_models_training_loss_falls(finetuned_model_folder):
    losses = [
        row["loss"] for row in artifacts.read_training_summary(finetuned_model_folder)["history"]
    ]
    tenth = max(1, len(losses) // 10)
    first, last = sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth
    assert last < 0.8 * first, (first, last)


def test_the_decoders_validation_loss_falls_and_beats_uniform_guessing(gpt_model_folder):
    summary = artifacts.read_training_summary(gpt_model_folder)
    val = [e["val_loss"] for e in summary["evaluations"]]
    assert len(val) >= 2 and val[-1] < val[0], val
    uniform = math.log(summary["config"]["vocab_size"])  # nats per token of a uniform guess
    assert min(val) < 0.8 * uniform, (min(val), uniform)
    steps = [row["loss"] for row in summary["history"]]
    assert sum(steps[-20:]) / 20 < sum(steps[:20]) / 20
