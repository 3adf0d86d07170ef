"""Pictures of a fine-tuning run (lesson 05): its learning curves, and runs compared.

``plot_learning_curves`` draws one run (training loss, learning rate, validation macro-F1);
``runs_to_compare`` gathers this notebook's run, the recorded FULL run and your own FULL run if
you trained one; ``plot_compared_runs`` draws their validation curves beside per-class test F1.
"""

from __future__ import annotations

from .artifacts import (
    FULL_MODEL_NAME,
    is_complete_model_folder,
    model_folder,
    read_training_summary,
)
from .data import LABELS
from .finetuned import recorded_full_run
from .settings import full_training_requested
from .train import TrainResult


def plot_learning_curves(
    result: TrainResult,
    baseline_f1: float | None = None,
    baseline_label: str = "TF-IDF (validation)",
    window: int = 20,
):
    """Three panels of one run: the training loss of every step with its moving average over
    ``window`` steps, the learning rate, and validation macro-F1 at each validation pass (with
    ``baseline_f1`` as a dashed line; its legend sits below the panel, off the data). Returns the
    matplotlib Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    loss = np.array([h["loss"] for h in result.history])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    axes[0].plot(np.arange(1, len(loss) + 1), loss, alpha=0.3, label="each batch")
    if len(loss) >= window:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        axes[0].plot(np.arange(window, len(loss) + 1), smooth, label=f"mean of {window}")
    axes[0].set(xlabel="optimizer step", ylabel="cross-entropy", title="training loss")
    axes[0].legend(loc="upper right")
    axes[1].plot([h["step"] for h in result.history], [h["lr"] for h in result.history])
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    axes[1].set(xlabel="optimizer step", ylabel="learning rate", title="schedule")
    steps = [e["step"] for e in result.evaluations]
    f1 = [e["val_macro_f1"] for e in result.evaluations]
    axes[2].plot(steps, f1, "o-", label="fine-tuned")
    if baseline_f1 is not None:
        axes[2].axhline(baseline_f1, color="gray", ls="--", label=baseline_label)
    axes[2].set(
        xlabel="optimizer step",
        ylabel="validation macro-F1",
        title="validation macro-F1",
        xlim=(0, len(loss) * 1.05),
    )
    axes[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    return fig


def runs_to_compare(result: TrainResult, test_metrics: dict) -> dict[str, tuple[list, dict]]:
    """``{name: (evaluations, test metrics)}`` for this notebook's run, the recorded FULL run and,
    when this notebook ran the default setting, a FULL model you trained yourself (if
    ``artifacts/minilm-tweets-full`` holds one whose summary kept its validation curve)."""
    full = recorded_full_run()
    this_run = "FULL" if full_training_requested() else "default"
    runs = {
        f"{this_run} (this notebook)": (result.evaluations, test_metrics),
        f"FULL (recorded {full['measured']})": (
            full["report"]["evaluations"],
            full["report"]["test"],
        ),
    }
    yours = model_folder(FULL_MODEL_NAME)
    if this_run == "default" and is_complete_model_folder(yours):
        try:
            summary = read_training_summary(yours)
        except FileNotFoundError:
            summary = {}
        if "evaluations" in summary and "test" in summary:
            runs["FULL (your run)"] = (summary["evaluations"], summary["test"])
    return runs


def plot_compared_runs(
    runs: dict[str, tuple[list, dict]],
    baseline_f1: float | None = None,
    baseline_label: str = "TF-IDF (validation)",
    labels: list[str] = LABELS,
):
    """Two panels for ``runs_to_compare``: validation macro-F1 against the epoch (so runs of
    different lengths share an axis), and the test F1 of each class, one bar per run. Legends sit
    below the panels, off the data. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for name, (evaluations, test) in runs.items():
        axes[0].plot(
            [e["epoch"] for e in evaluations],
            [e["val_macro_f1"] for e in evaluations],
            "o-",
            label=f"{name}: test macro-F1 {test['macro_f1']:.3f}",
        )
    if baseline_f1 is not None:
        axes[0].axhline(baseline_f1, color="gray", ls="--", label=baseline_label)
    axes[0].set(
        xlabel="epoch (passes over that run's training data)",
        ylabel="validation macro-F1",
        title="validation macro-F1 during training",
    )
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    width = 0.8 / len(runs)
    for k, (name, (_, test)) in enumerate(runs.items()):
        f1 = [test["per_class"][c]["f1"] for c in labels]
        axes[1].bar(
            np.arange(len(labels)) + (k - (len(runs) - 1) / 2) * width, f1, width, label=name
        )
    axes[1].set_xticks(range(len(labels)), labels)
    axes[1].set(xlabel="true class", ylabel="test F1", ylim=(0.5, 1), title="test F1 per class")
    axes[1].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(runs))
    return fig
