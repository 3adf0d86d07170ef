"""The prior shift between lesson 05's data and the challenge, and two ways to correct for it.

A classifier trained on lesson 05's pool (about 50 / 37 / 13 % negative / neutral / positive)
meets the challenge's low-agreement tweets, about 13 / 62 / 24 %. The dev set (``devset.py``)
is drawn like the challenge, so its label shares stand in for the challenge's.

- **Bayes' prior correction** (``bayes_corrected``) assumes only the shares changed, not what a
  tweet of each class looks like: multiply each class's probability by (new share) / (training
  share) and renormalise. Here that assumption is wrong: the course's models already answer
  ``neutral`` for most of these tweets (they are the ones annotators found unclear), and the
  correction pushes them further that way. Lesson 10 measures it on the dev set.
- **Matching the shares** (``matching_weights``): one weight per class, chosen so that the
  *predicted* shares on a set of texts come as close as they can to the target shares. Fitted
  on the challenge's texts (no label needed) towards the dev set's shares, it uses no challenge
  label, and the dev set, whose labels it used only as three shares, can then check it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from ..data import LABELS, load_split
from .challenge import Challenge
from .ranking import bootstrap_weights, label_indices, weighted_macro_f1

LOG_WEIGHTS = np.arange(-3.0, 3.0001, 0.05)  # the grid matching_weights searches, per class


def label_shares(labels: Sequence) -> np.ndarray:
    """Share of each of ``LABELS`` among ``labels`` (names, or indices into ``LABELS``)."""
    counts = Counter(LABELS[y] if isinstance(y, (int, np.integer)) else y for y in labels)
    return np.array([counts[label] for label in LABELS], dtype=float) / max(1, len(labels))


def training_shares() -> np.ndarray:
    """The label shares of lesson 05's training pool."""
    return label_shares(load_split("train")[1])


def bayes_corrected(probabilities, train: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Probabilities (rows in the order of ``LABELS``) moved from the ``train`` shares to the
    ``target`` shares by Bayes' rule."""
    weighted = np.asarray(probabilities, dtype=float) * (np.asarray(target) / np.asarray(train))
    return weighted / weighted.sum(axis=1, keepdims=True)


def matching_weights(probabilities, target: np.ndarray) -> np.ndarray:
    """Class weights (neutral's fixed at 1) under which the most probable classes of
    ``probabilities`` come in shares closest to ``target`` (sum of absolute differences),
    searched on a grid of log-weights from -3 to 3."""
    logp = np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1.0))
    neutral = LABELS.index("neutral")
    others = [k for k in range(len(LABELS)) if k != neutral]
    best = (np.inf, 0.0, 0.0)
    for a in LOG_WEIGHTS:  # the first other class; the second is searched all at once
        shifted = np.repeat(logp[:, :, None], len(LOG_WEIGHTS), axis=2)
        shifted[:, others[0], :] += a
        shifted[:, others[1], :] += LOG_WEIGHTS
        picked = shifted.argmax(axis=1)  # (texts, grid)
        shares = np.stack([(picked == k).mean(axis=0) for k in range(len(LABELS))], axis=1)
        distance = np.abs(shares - target).sum(axis=1)
        j = int(distance.argmin())
        if distance[j] < best[0] - 1e-12:
            best = (distance[j], a, LOG_WEIGHTS[j])
    log_weights = np.zeros(len(LABELS))
    log_weights[others] = best[1:]
    return np.exp(log_weights)


def relabel(probabilities, weights: np.ndarray | None = None) -> list[str]:
    """The most probable label of each row, after multiplying by the class ``weights``."""
    p = np.asarray(probabilities, dtype=float) * (1.0 if weights is None else weights)
    return [LABELS[k] for k in p.argmax(axis=1)]


def dev_report(
    dev: Challenge,
    predict_proba: Callable[[list[str]], np.ndarray],
    challenge_texts: list[str],
    train: np.ndarray,
) -> dict:
    """Macro-F1 on the dev set as the model answers, after Bayes' prior correction, and with the
    weights that match its predicted shares on ``challenge_texts`` to the dev set's shares;
    each with its bootstrap spread (the standard deviation over resamples of the dev set) and
    the shares it predicts."""
    probs = np.asarray(predict_proba(dev.texts))
    target = label_shares(dev.labels)
    weights = matching_weights(predict_proba(challenge_texts), target)
    truth = label_indices(dev.labels)
    resamples = bootstrap_weights(len(dev.ids))
    out = {"train_shares": train, "dev_shares": target, "weights": weights}
    variants = {
        "as_is": probs,
        "bayes": bayes_corrected(probs, train, target),
        "matched": probs * weights,
    }
    for name, p in variants.items():
        scores = weighted_macro_f1(truth, p.argmax(axis=1), resamples)
        out[name] = {
            "macro_f1": float(scores[0]),
            "spread": float(scores.std()),
            "predicted_shares": label_shares(p.argmax(axis=1).tolist()),
        }
    return out


def plot_shares(rows: dict[str, np.ndarray]):
    """Grouped bars: the share of each label in each named row (e.g. training pool, dev set,
    what a model predicts on the dev set)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    width = 0.8 / len(rows)
    x = np.arange(len(LABELS))
    for k, (name, shares) in enumerate(rows.items()):
        bars = ax.bar(x + (k - (len(rows) - 1) / 2) * width, 100 * np.asarray(shares), width)
        bars.set_label(name)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(x, LABELS)
    ax.set_ylabel("share of tweets (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Label shares: lesson 05's training pool against tweets like the challenge's")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
