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


def attention_cost_figure(
    lengths, widths, models=((384, 12), (768, 12)), width_lengths=(128, 2048)
):
    """Three log-log panels of ``multihead.attention_cost`` (batch 1): compute against sequence
    length, memory against sequence length (one pair of lines per ``(d_model, n_heads)`` in
    ``models``), and compute against width (H = 12) at the lengths ``width_lengths``.

    The ``(B, H, L, L)`` weights do not depend on the width, so their line is drawn once per
    number of heads. Returns the figure.
    """
    from .multihead import attention_cost

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), layout="constrained")
    styles = ["-", "--", ":", "-."]
    drawn_heads = set()
    for (D, H), style in zip(models, styles):
        costs = [attention_cost(n, D, H) for n in lengths]
        axes[0].loglog(
            lengths,
            [c["projection_flops"] for c in costs],
            "C0" + style,
            label=f"projections, D={D}",
        )
        axes[0].loglog(
            lengths,
            [c["score_flops"] + c["mixing_flops"] for c in costs],
            "C1" + style,
            label=f"scores + mixing, D={D}",
        )
        if H not in drawn_heads:  # identical for every width with this H
            drawn_heads.add(H)
            axes[1].loglog(
                lengths,
                [c["attention_weights_bytes"] / 2**20 for c in costs],
                "C2" + style,
                label=f"weights (H,L,L), H={H}, any D",
            )
        axes[1].loglog(
            lengths,
            [c["activations_bytes"] / 2**20 for c in costs],
            "C3" + style,
            label=f"q, k, v, out, D={D}",
        )
    for n, style in zip(width_lengths, styles):
        axes[2].loglog(
            widths,
            [attention_cost(n, w, 12)["total_flops"] for w in widths],
            "C4" + style,
            marker="o",
            label=f"L={n}",
        )
    axes[0].set(xlabel="sequence length L", ylabel="FLOPs (batch 1)", title="compute")
    axes[1].set(xlabel="sequence length L", ylabel="MiB (float32, batch 1)", title="memory")
    axes[2].set(xlabel="width D (H=12)", ylabel="total FLOPs (batch 1)", title="compute vs width")
    for ax in axes:
        ax.legend(fontsize=8, loc="upper left")
    return fig


def _numpy(x):
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)


def position_similarity_figure(similarities: dict):
    """Cosine similarities between the positions of position tables, e.g.
    ``{"MiniLM, learned": sim_a, "sinusoidal": sim_b}`` with each ``sim`` an ``(n, n)`` matrix
    (``positional.cosine_similarity_matrix``).

    Left: the matrices side by side on one -1..1 scale with one colourbar. Right: for each table,
    the mean similarity of two positions against their distance ``|i - j|``. Returns the figure.
    """
    sims = {label: _numpy(s) for label, s in similarities.items()}
    for label, s in sims.items():
        if s.ndim != 2 or s.shape[0] != s.shape[1]:
            raise ValueError(f"{label!r}: expected a square (n, n) matrix, got shape {s.shape}")
    n = len(sims)
    fig = plt.figure(figsize=(4.6 * n + 5.4, 4.6), layout="constrained")
    grid = fig.add_gridspec(1, n + 1, width_ratios=[1] * n + [1.25])
    maps = [fig.add_subplot(grid[0, i]) for i in range(n)]
    curve = fig.add_subplot(grid[0, n])
    for ax, (label, s) in zip(maps, sims.items()):
        image = ax.imshow(s, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=label, xlabel="position j", ylabel="position i")
        ax.grid(False)
        distances = np.arange(1, s.shape[0])
        curve.plot(distances, [np.diagonal(s, d).mean() for d in distances], label=label)
    fig.colorbar(image, ax=maps, shrink=0.85, label="cosine similarity")
    curve.set(
        xlabel="distance |i - j|",
        ylabel="mean cosine similarity",
        title="similarity against distance",
    )
    curve.legend(fontsize=8, loc="upper right")
    return fig


def sinusoid_explorer_figure(pe, position: int, pair: int, shift: int, n_shown: int = 128):
    """The picture behind lesson 03's explorer, for a sinusoidal table ``pe`` ``(n, d)`` with at
    least ``position + shift + 1`` rows.

    Left: the table, the chosen position (blue) and the one ``shift`` steps later (red) marked,
    and feature pair ``pair`` shaded. Middle: that pair as a point on its circle for the first
    ``n_shown`` positions (grey) and for the two chosen ones. Right: the dot product of the
    chosen position with every position of the table. Returns the figure.
    """
    from .positional import sinusoidal_frequencies

    table = _numpy(pe)
    n, d = table.shape
    if not 0 <= pair < d // 2:
        raise ValueError(f"pair must lie in 0..{d // 2 - 1} for a table of width {d}, got {pair}")
    if not 0 <= position < n_shown <= n or position + shift >= n:
        raise ValueError(
            f"position {position} and position + shift {position + shift} must be rows of the "
            f"table ({n} rows), with position below n_shown={n_shown}"
        )
    w = sinusoidal_frequencies(d)[pair].item()
    fig, axes = plt.subplots(
        1, 3, figsize=(16, 4.4), layout="constrained", gridspec_kw={"width_ratios": [1.4, 1, 1.2]}
    )
    image = axes[0].imshow(table.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    fig.colorbar(image, ax=axes[0], label="PE value")
    axes[0].axvline(position, color="C0")
    axes[0].axvline(position + shift, color="C3")
    axes[0].axhspan(2 * pair - 0.5, 2 * pair + 1.5, color="k", alpha=0.2)
    axes[0].set(xlabel="position", ylabel="feature", title="PE table (pair i shaded)")
    axes[0].grid(False)
    circle = table[:n_shown, 2 * pair : 2 * pair + 2]
    axes[1].scatter(circle[:, 1], circle[:, 0], s=8, color="0.75", label=f"pos 0..{n_shown - 1}")
    for p, colour in ((position, "C0"), (position + shift, "C3")):
        axes[1].scatter(
            table[p, 2 * pair + 1], table[p, 2 * pair], s=80, color=colour, label=f"pos {p}"
        )
    axes[1].set(
        xlabel="cos (feature 2i+1)",
        ylabel="sin (feature 2i)",
        aspect="equal",
        xlim=(-1.25, 1.25),
        ylim=(-1.25, 1.25),
        title=f"pair {pair}: w = {w:.4f}, k w = {shift * w:.3f} rad",
    )
    axes[1].legend(fontsize=8, loc="center")  # the middle of the circle is empty
    axes[2].plot(table @ table[position], color="0.3")
    axes[2].axvline(position, color="C0")
    axes[2].axvline(position + shift, color="C3")
    axes[2].set(
        xlabel="other position",
        ylabel="PE(position) . PE(other)",
        title=f"similarity to position {position}",
    )
    return fig


def plain_log_ticks(axis) -> None:
    """Label a log-scale matplotlib axis at 1, 2, 3, 5 x 10^k as plain numbers (2, 3, 5, 10),
    instead of matplotlib's default 2x10^0."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
