"""Classification metrics for lessons 05, 06 and 10: scikit-learn does the arithmetic.

Macro-F1 is the course's headline number: the F1 of each class, averaged with equal weight, so
the small positive class counts as much as the large negative one.

``macro_f1_from_confusion`` is the same number written out from the confusion matrix, the
reference for lesson 05's exercise; a unit test checks it against scikit-learn.
``predict_logits`` and ``evaluate`` run a classifier over a list of texts and score it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .batching import encode, length_bucketed_batches, pad_batch
from .data import LABELS
from .runtime.exercises import Case, check_exercise
from .settings import MAX_TOKENS


def _labels_checked(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape}, y_pred {y_pred.shape}; expected equal shapes"
        )
    return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes: int = len(LABELS)) -> np.ndarray:
    """``C[i, j]`` = number of examples of true class ``i`` predicted as ``j``: ``(K, K)`` int."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    y_true, y_pred = _labels_checked(y_true, y_pred)
    return sk_confusion(y_true, y_pred, labels=list(range(num_classes))).astype(np.int64)


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None) -> float:
    """Unweighted mean of the per-class F1 (0 for a class never predicted, as scikit-learn does)."""
    from sklearn.metrics import f1_score

    y_true, y_pred = _labels_checked(y_true, y_pred)
    labels = list(range(num_classes)) if num_classes else None
    return float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))


def classification_metrics(y_true, y_pred, labels: Sequence[str] = LABELS) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, and the confusion matrix."""
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = _labels_checked(y_true, y_pred)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    return {
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, name in enumerate(labels)
        },
        "confusion": confusion_matrix(y_true, y_pred, len(labels)).tolist(),
    }


def macro_f1_from_confusion(cm) -> float:
    r"""Mean over classes of :math:`F_1 = 2PR/(P+R)`, with precision :math:`P = C_{kk}/\sum_i
    C_{ik}`
    and recall :math:`R = C_{kk}/\sum_j C_{kj}` (0 where undefined, as scikit-learn does)."""
    cm = torch.as_tensor(cm, dtype=torch.float64)
    tp = cm.diagonal()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(
        denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp)
    )
    return float(f1.mean())


def check_macro_f1(fn, verbose: bool = True, show_answer: bool = False):
    """Checker for the macro-F1 exercise: ``fn(confusion (K, K)) -> float`` (rows = true class)."""

    def as_tensor(f):
        return lambda cm: torch.as_tensor(float(f(cm)), dtype=torch.float64)

    hint = (
        "precision_k = C[k,k] / column sum k, recall_k = C[k,k] / row sum k, F1_k = 2PR/(P+R); "
        "then the plain mean over classes."
    )
    never_predicted = (
        "when a class is never predicted its precision is 0/0: count it as 0 "
        "(as scikit-learn does)."
    )
    cases = [
        Case("perfect predictions", (torch.tensor([[5, 0, 0], [0, 3, 0], [0, 0, 2]]),), hint=hint),
        Case(
            "a mixed 3x3 matrix", (torch.tensor([[50, 10, 5], [8, 30, 2], [4, 6, 20]]),), hint=hint
        ),
        Case(
            "a class never predicted",
            (torch.tensor([[4, 1, 0], [2, 3, 0], [1, 1, 0]]),),
            hint=never_predicted,
        ),
        Case("two classes", (torch.tensor([[7, 3], [1, 9]]),), hint=hint),
    ]
    result = check_exercise(
        "macro-F1 from a confusion matrix",
        as_tensor(fn),
        as_tensor(macro_f1_from_confusion),
        cases,
        atol=1e-6,
        verbose=verbose,
        show_answer=show_answer,
    )
    return fn if result.passed else macro_f1_from_confusion


def plot_confusion_matrix(confusion, labels: Sequence[str] = LABELS):
    """Two heatmaps of a confusion matrix (rows = true class, columns = predicted): the counts,
    and each row divided by its total (so the diagonal is each class's recall, on a 0-1 scale).
    Each cell is written out; each panel has its colourbar. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.int64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion has shape {counts.shape}; expected ({k}, {k}) for {labels}")
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.9), constrained_layout=True)
    panels = [
        (axes[0], counts, "counts", "{:,}", counts.max(), "tweets"),
        (axes[1], shares, "share of each true class (row sums to 1)", "{:.2f}", 1.0, "share"),
    ]
    for ax, matrix, title, fmt, top, bar_label in panels:
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(top, 1e-9))
        ax.set_xticks(range(k), labels)
        ax.set_yticks(range(k), labels)
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
        ax.grid(False)
        for i in range(k):
            for j in range(k):
                dark = matrix[i, j] > 0.6 * top
                ax.text(
                    j,
                    i,
                    fmt.format(matrix[i, j]),
                    ha="center",
                    va="center",
                    color="white" if dark else "black",
                )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=bar_label)
    return fig


# Running a classifier over texts and scoring it
@torch.inference_mode()
def predict_logits(
    model,
    tokenizer,
    texts: list[str],
    batch_size: int = 128,
    max_length: int = MAX_TOKENS,
    device=None,
    progress: bool = False,
) -> np.ndarray:
    """Class logits ``(N, K)`` for ``texts``, in their original order (batched by length)."""
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    ids = encode(tokenizer, texts, max_length)
    batches = length_bucketed_batches([len(s) for s in ids], batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for b in tqdm(batches, desc="predict", disable=not progress, leave=False):
        batch = {
            k: v.to(device)
            for k, v in pad_batch([ids[i] for i in b], pad_id=tokenizer.pad_token_id).items()
        }
        out[b] = model(**batch).logits.float().cpu().numpy()
    model.train(was_training)
    return out


def evaluate(
    model,
    tokenizer,
    texts: list[str],
    labels: list[int],
    batch_size: int = 128,
    max_length: int = MAX_TOKENS,
    device=None,
) -> dict:
    """``classification_metrics`` plus mean cross-entropy ``loss`` and the ``logits``."""
    logits = predict_logits(model, tokenizer, texts, batch_size, max_length, device)
    loss = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits), torch.as_tensor(labels)
    ).item()
    metrics = classification_metrics(labels, logits.argmax(1))
    metrics.update(loss=loss, logits=logits)
    return metrics
