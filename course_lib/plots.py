"""Small plotting helpers shared by the lessons."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def attention_heatmap(
    weights,
    queries,
    keys=None,
    ax=None,
    title=None,
    annotate=True,
    cmap="viridis",
    vmax=1.0,
    colorbar=True,
):
    """Draw an ``(L, S)`` attention-weight matrix with the tokens on the axes.

    Rows are queries (who is looking), columns are keys (who is looked at); each row sums to 1.
    The colour scale runs from 0 to ``vmax`` (default 1, the largest possible weight), so panels
    drawn with the same ``vmax`` can be compared: a nearly uniform row stays dark instead of
    being stretched to look like full attention. ``vmax=None`` scales to this matrix's largest
    weight (say so in the title when you use it). ``colorbar`` adds the scale beside the panel.
    Returns ``(ax, image)``; pass ``image`` to ``plt.colorbar`` to draw one bar for many panels.
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
        _, ax = plt.subplots(figsize=(0.55 * len(keys) + 2.8, 0.5 * len(queries) + 1.5))
    top = max(1e-9, w.max()) if vmax is None else vmax
    im = ax.imshow(w, vmin=0, vmax=top, cmap=cmap)
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
                    color="white" if w[i, j] < 0.6 * top else "black",
                )
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    if title:
        ax.set_title(title)
    return ax, im


def attention_grid(weights, labels, titles=None, ncols=4, panel_size=3.4, suptitle=None):
    """A grid of attention maps, e.g. every head of one layer: ``weights`` is ``(n, L, L)``.

    All panels share the 0-1 colour scale of ``attention_heatmap`` and one colourbar; the axis
    names (query, key) are written once for the whole figure. Returns the figure.
    """
    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 3:
        raise ValueError(f"attention_grid expects (n, L, S) weights, got shape {w.shape}")
    titles = list(titles) if titles is not None else [f"{i}" for i in range(w.shape[0])]
    if len(titles) != w.shape[0]:
        raise ValueError(f"{w.shape[0]} panels but {len(titles)} titles")
    nrows = -(-w.shape[0] // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_size * ncols + 1.2, panel_size * nrows + 0.8),
        layout="constrained",
        squeeze=False,
    )
    for i, ax in enumerate(axes.flat):
        if i >= w.shape[0]:
            ax.axis("off")
            continue
        _, image = attention_heatmap(
            w[i], labels, ax=ax, title=titles[i], annotate=False, colorbar=False
        )
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7)
    fig.colorbar(
        image, ax=axes, shrink=0.5, label="attention weight (same 0-1 scale in every panel)"
    )
    fig.supxlabel("key (attended to)")
    fig.supylabel("query")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plain_log_ticks(axis) -> None:
    """Label a log-scale matplotlib axis at 1, 2, 3, 5 x 10^k as plain numbers (2, 3, 5, 10),
    instead of matplotlib's default 2x10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
