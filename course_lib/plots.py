"""Small plotting helpers shared by the lessons."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def attention_heatmap(
    weights, queries, keys=None, ax=None, title=None, annotate=True, cmap="viridis"
):
    """Draw an ``(L, S)`` attention-weight matrix with the tokens on the axes.

    Rows are queries (who is looking), columns are keys (who is looked at); each row sums to 1.
    """
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"attention_heatmap expects a 2-D (L, S) matrix, got shape {w.shape}")
    keys = queries if keys is None else keys
    if w.shape != (len(queries), len(keys)):
        raise ValueError(
            f"weights have shape {w.shape} but there are {len(queries)} query labels "
            f"and {len(keys)} key labels"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(0.55 * len(keys) + 2, 0.5 * len(queries) + 1.5))
    im = ax.imshow(w, vmin=0, vmax=max(1e-9, w.max()), cmap=cmap)
    ax.set_xticks(range(len(keys)), keys, rotation=60, ha="right")
    ax.set_yticks(range(len(queries)), queries)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    ax.grid(False)
    if annotate and w.size <= 225:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{w[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if w[i, j] < 0.6 * w.max() else "black",
                )
    if title:
        ax.set_title(title)
    return ax, im
