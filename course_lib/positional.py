"""Positional information for attention: sinusoidal, learned, and rotary (RoPE).

Self-attention alone treats its input as a set: permute the tokens and the outputs are permuted
the same way (``permutation_error`` measures it). Position has to be put in by hand.

- **Sinusoidal** (Vaswani et al., 2017), added to the token embeddings:

      PE(pos, 2i)   = sin(pos / 10000^(2i/d))
      PE(pos, 2i+1) = cos(pos / 10000^(2i/d))

  Each pair of features ``(2i, 2i+1)`` is a point on a circle turning at the frequency
  ``omega_i = 10000^(-2i/d)``. Moving ``k`` positions on turns every circle by ``k * omega_i``,
  so ``PE(pos + k) = M_k PE(pos)`` with one fixed block-rotation matrix ``M_k``
  (``shift_rotation_matrix``), whatever ``pos`` is.
- **Learned** absolute embeddings (BERT): one trainable vector per position, added likewise.
- **Rotary** (RoPE, Su et al., 2021): no addition; instead q and k at position ``m`` are rotated
  pair by pair by the angles ``m * omega_i``. Since rotations compose,
  ``(R_m q) . (R_n k) = q . R_{n-m} k``: the score depends on the offset ``n - m`` only.

Shapes: positions ``L``, model width ``d`` (even), head width ``d_head`` (even).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .runtime.exercises import Case, check_exercise

DEFAULT_BASE = 10000.0


def _check_even(name: str, d: int) -> None:
    if not isinstance(d, int) or d < 2 or d % 2:
        raise ValueError(
            f"{name} must be a positive even int (features come in sin/cos pairs), got {d!r}"
        )


# ---------------------------------------------------------------- sinusoidal


def sinusoidal_frequencies(
    d_model: int, base: float = DEFAULT_BASE, dtype=torch.float64
) -> torch.Tensor:
    """``omega_i = base^(-2i/d)`` for ``i = 0 .. d/2 - 1``: shape ``(d/2,)``, from 1 down to about
    1/base."""
    _check_even("d_model", d_model)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    return (1.0 / base ** (two_i / d_model)).to(dtype)


def sinusoidal_encoding(
    n_positions: int, d_model: int, base: float = DEFAULT_BASE, dtype=torch.float32
) -> torch.Tensor:
    """The ``(n_positions, d_model)`` table ``PE(pos, 2i) = sin(pos * omega_i)``, ``PE(pos, 2i+1) =
    cos(pos * omega_i)``.

    Computed in float64 and then cast, so large positions keep their precision.
    """
    if not isinstance(n_positions, int) or n_positions < 1:
        raise ValueError(f"n_positions must be a positive int, got {n_positions!r}")
    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * sinusoidal_frequencies(
        d_model, base
    )
    pe = torch.empty(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)  # even features
    pe[:, 1::2] = torch.cos(angles)  # odd features
    return pe.to(dtype)


def sinusoidal_dot_product(offset, d_model: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """``PE(pos) . PE(pos + k) = sum_i cos(k * omega_i)``: a function of the offset ``k`` alone.

    (sin a sin b + cos a cos b = cos(a - b).) ``offset`` may be a number or a tensor of offsets.
    """
    k = torch.as_tensor(offset, dtype=torch.float64)
    return torch.cos(k[..., None] * sinusoidal_frequencies(d_model, base)).sum(-1)


def _check_x(x: torch.Tensor, d: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != d:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} expects x of shape (B, L, d_model={d}), got {shape}")


class SinusoidalPositionalEncoding(nn.Module):
    """``x + PE[offset : offset + L]`` for ``x`` of shape ``(B, L, d_model)``; nothing to train."""

    def __init__(self, d_model: int, max_positions: int = 512, base: float = DEFAULT_BASE):
        super().__init__()
        self.d_model, self.max_positions = d_model, max_positions
        # a buffer: moves with .to(device) and is saved, but is not a parameter
        self.register_buffer(
            "pe", sinusoidal_encoding(max_positions, d_model, base), persistent=False
        )

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        _check_x(x, self.d_model, "SinusoidalPositionalEncoding")
        L = x.shape[1]
        if offset < 0 or offset + L > self.max_positions:
            raise ValueError(
                f"positions {offset}..{offset + L - 1} of x {tuple(x.shape)} exceed "
                f"max_positions={self.max_positions}"
            )
        return x + self.pe[offset : offset + L].to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """``x + E[position_ids]`` with ``E`` a trainable ``(max_positions, d_model)`` table (BERT's
    kind).

    ``position_ids`` defaults to ``0 .. L-1``. Positions beyond ``max_positions`` simply do not
    exist: unlike the sinusoidal table, a learned table cannot extrapolate.
    """

    def __init__(self, max_positions: int, d_model: int):
        super().__init__()
        self.max_positions, self.d_model = max_positions, d_model
        self.embedding = nn.Embedding(max_positions, d_model)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        _check_x(x, self.d_model, "LearnedPositionalEmbedding")
        L = x.shape[1]
        if position_ids is None:
            if L > self.max_positions:
                raise ValueError(
                    f"x {tuple(x.shape)} has L={L} positions, more than "
                    f"max_positions={self.max_positions}"
                )
            position_ids = torch.arange(L, device=x.device)
        position_ids = torch.as_tensor(position_ids, device=x.device)
        if position_ids.shape[-1] != L:
            raise ValueError(
                f"position_ids has shape {tuple(position_ids.shape)}, expected (L,) or (B, L) "
                f"with L={L}"
            )
        if position_ids.numel() and (
            position_ids.min() < 0 or position_ids.max() >= self.max_positions
        ):
            raise ValueError(
                f"position_ids must lie in [0, {self.max_positions - 1}], got "
                f"{int(position_ids.min())}..{int(position_ids.max())}"
            )
        return x + self.embedding(position_ids)

    @classmethod
    def from_hf_bert(cls, model) -> LearnedPositionalEmbedding:
        """Copy ``embeddings.position_embeddings`` of a Hugging Face BERT (``BertModel`` or a task
        model)."""
        bert = getattr(model, "bert", model)  # BertForSequenceClassification -> BertModel
        table = getattr(getattr(bert, "embeddings", None), "position_embeddings", None)
        if not isinstance(table, nn.Embedding):
            raise ValueError(
                f"expected a Hugging Face BERT model with .embeddings.position_embeddings, "
                f"got {type(model).__name__}"
            )
        new = cls(table.num_embeddings, table.embedding_dim).to(
            table.weight.device, table.weight.dtype
        )
        with torch.no_grad():
            new.embedding.weight.copy_(table.weight)
        return new


# ---------------------------------------------------------------- rotations


def block_rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """``(2n, 2n)`` block-diagonal matrix whose block i is the 2-D rotation by ``angles[i]``:
    ``[[cos, -sin], [sin, cos]]`` acting on features ``(2i, 2i+1)``."""
    angles = torch.as_tensor(angles)
    if angles.dim() != 1:
        raise ValueError(
            f"angles must be 1-D (one per feature pair), got shape {tuple(angles.shape)}"
        )
    n = angles.shape[0]
    c, s = torch.cos(angles), torch.sin(angles)
    m = torch.zeros(
        2 * n, 2 * n, dtype=angles.dtype if angles.is_floating_point() else torch.float32
    )
    idx = torch.arange(n)
    m[2 * idx, 2 * idx], m[2 * idx, 2 * idx + 1] = c, -s
    m[2 * idx + 1, 2 * idx], m[2 * idx + 1, 2 * idx + 1] = s, c
    return m


def shift_rotation_matrix(
    k: float, d_model: int, base: float = DEFAULT_BASE, dtype=torch.float32
) -> torch.Tensor:
    """The ``(d, d)`` matrix ``M_k`` with ``PE(pos + k) = M_k @ PE(pos)`` for every ``pos``.

    Pair ``(sin a, cos a)`` with ``a = pos * omega_i`` goes to ``(sin(a + b), cos(a + b))``,
    ``b = k * omega_i``:  ``sin(a+b) = cos b sin a + sin b cos a``, ``cos(a+b) = -sin b sin a + cos
    b cos a``,
    so block i is ``[[cos b, sin b], [-sin b, cos b]]`` -- a rotation by ``-b`` because the pair is
    stored as (sin, cos). For a table with positions as rows: ``pe[k:] = pe[:-k] @ M_k.T``.
    """
    angles = -float(k) * sinusoidal_frequencies(d_model, base)
    return block_rotation_matrix(angles).to(dtype)


def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """``(n, d)`` -> ``(n, n)`` cosine similarities between rows (for position tables)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"cosine_similarity_matrix expects a (n, d) table, got {shape}")
    unit = torch.nn.functional.normalize(x, dim=-1)
    return unit @ unit.T


def permutation_error(fn, x: torch.Tensor, perm: torch.Tensor) -> float:
    """``max |fn(x[:, perm]) - fn(x)[:, perm]|`` for ``x`` ``(B, L, d)``: 0 (up to rounding) means
    ``fn`` is permutation-equivariant, i.e. blind to the order of the positions."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(
            "x must be (B, L, d), got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    perm = torch.as_tensor(perm)
    if sorted(perm.tolist()) != list(range(x.shape[1])):
        raise ValueError(f"perm must be a permutation of 0..{x.shape[1] - 1}, got {perm.tolist()}")
    with torch.no_grad():
        return (fn(x[:, perm]) - fn(x)[:, perm]).abs().max().item()


# ---------------------------------------------------------------- rotary position embedding (RoPE)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """``(x0, x1, x2, x3, ...)`` -> ``(-x1, x0, -x3, x2, ...)``: each pair turned by 90 degrees.

    With it, rotating every pair by its angle is ``x * cos + rotate_pairs(x) * sin``.
    """
    if x.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even, got shape {tuple(x.shape)}")
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x_a, x_b)`` halves -> ``(-x_b, x_a)``: the 'half' layout used by GPT-NeoX and Llama,
    which pairs feature ``j`` with ``j + d/2`` instead of ``2i`` with ``2i+1``."""
    if x.shape[-1] % 2:
        raise ValueError(f"the last dimension must be even, got shape {tuple(x.shape)}")
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope_angles(positions, head_dim: int, base: float = DEFAULT_BASE) -> torch.Tensor:
    """``theta[m, i] = positions[m] * omega_i``, shape ``(L, head_dim/2)`` (float64), same
    ``omega_i`` as sinusoidal."""
    positions = torch.as_tensor(positions, dtype=torch.float64)
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D (L,), got shape {tuple(positions.shape)}")
    return positions[:, None] * sinusoidal_frequencies(head_dim, base)


def rope_cos_sin(
    positions,
    head_dim: int,
    base: float = DEFAULT_BASE,
    interleaved: bool = True,
    dtype=torch.float32,
):
    """``cos`` and ``sin`` tables of shape ``(L, head_dim)``, each angle repeated for both features
    of its pair."""
    theta = rope_angles(positions, head_dim, base)
    theta = theta.repeat_interleave(2, dim=-1) if interleaved else torch.cat((theta, theta), dim=-1)
    return theta.cos().to(dtype), theta.sin().to(dtype)


def apply_rope(
    x: torch.Tensor, positions=None, base: float = DEFAULT_BASE, interleaved: bool = True
) -> torch.Tensor:
    """Rotate each feature pair of ``x`` ``(..., L, head_dim)`` by ``positions[m] * omega_i``.

    ``x_rot = x * cos(theta) + rotate(x) * sin(theta)``. ``positions`` defaults to ``0 .. L-1``.
    ``interleaved=True`` pairs features ``(2i, 2i+1)`` (the RoFormer paper, and the same pairs as
    the sinusoidal table); ``False`` pairs ``(j, j + d/2)`` like Hugging Face's Llama.
    Apply it to q and k (not v) of every head, before the scores.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"apply_rope expects x of shape (..., L, head_dim), got {shape}")
    L, d = x.shape[-2], x.shape[-1]
    _check_even("head_dim", d)
    positions = torch.arange(L) if positions is None else torch.as_tensor(positions)
    if positions.shape != (L,):
        raise ValueError(
            f"positions has shape {tuple(positions.shape)}, expected (L,) = ({L},) for x "
            f"{tuple(x.shape)}"
        )
    cos, sin = rope_cos_sin(positions.cpu(), d, base, interleaved, dtype=x.dtype)
    cos, sin = cos.to(x.device), sin.to(x.device)
    rotated = rotate_pairs(x) if interleaved else rotate_half(x)
    return x * cos + rotated * sin


def rope_rotation_matrix(
    position: float, head_dim: int, base: float = DEFAULT_BASE, dtype=torch.float32
) -> torch.Tensor:
    """The ``(head_dim, head_dim)`` matrix ``R_m`` of ``apply_rope`` (interleaved) at position
    ``m``."""
    _check_even("head_dim", head_dim)
    return block_rotation_matrix(float(position) * sinusoidal_frequencies(head_dim, base)).to(dtype)


def rope_score_matrix(
    q: torch.Tensor, k: torch.Tensor, n_positions: int, base: float = DEFAULT_BASE
) -> torch.Tensor:
    """``S[m, n] = (R_m q) . (R_n k)`` for one query vector ``q`` and one key vector ``k``
    ``(head_dim,)``
    placed at every position: ``(n_positions, n_positions)``. With RoPE each diagonal
    ``n - m = const`` is constant."""
    if q.dim() != 1 or q.shape != k.shape:
        raise ValueError(
            f"q and k must be vectors of the same length (head_dim,), got q {tuple(q.shape)}, k "
            f"{tuple(k.shape)}"
        )
    qs = apply_rope(q.expand(n_positions, -1), base=base)
    ks = apply_rope(k.expand(n_positions, -1), base=base)
    return qs @ ks.T


class RotaryEmbedding(nn.Module):
    """Applies RoPE to q and k: ``forward(q, k) -> (q_rot, k_rot)``, both ``(..., L, head_dim)``.

    ``q_positions`` / ``k_positions`` default to ``0 .. L-1`` of each (pass them when decoding
    with a cache, where the new queries sit after the cached keys).
    """

    def __init__(self, head_dim: int, base: float = DEFAULT_BASE, interleaved: bool = True):
        super().__init__()
        _check_even("head_dim", head_dim)
        self.head_dim, self.base, self.interleaved = head_dim, base, interleaved

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}, interleaved={self.interleaved}"

    def forward(self, q: torch.Tensor, k: torch.Tensor, q_positions=None, k_positions=None):
        for name, t in (("q", q), ("k", k)):
            if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.shape[-1] != self.head_dim:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(
                    f"{name} has shape {shape}, expected (..., L, head_dim={self.head_dim})"
                )
        return (
            apply_rope(q, q_positions, self.base, self.interleaved),
            apply_rope(k, k_positions, self.base, self.interleaved),
        )


# ---------------------------------------------------------------- exercise checkers (lesson 03)


def check_sinusoidal_encoding(fn, verbose: bool = True):
    """Checker for the exercise ``fn(n_positions, d_model) -> (n_positions, d_model)`` float32
    table."""

    hint = (
        "even columns 2i hold sin(pos / 10000**(2i/d)), odd columns 2i+1 hold cos of the SAME "
        "angle; "
        "return float32."
    )
    cases = [
        Case(f"n_positions={n}, d_model={d}", (n, d), hint=hint)
        for n, d in ((1, 2), (4, 6), (50, 16), (128, 64))
    ]
    return check_exercise(
        "sinusoidal encoding", fn, sinusoidal_encoding, cases, atol=1e-5, verbose=verbose
    ).function


def check_shift_rotation_matrix(fn, verbose: bool = True):
    """Checker for the exercise ``fn(k, d_model) -> (d_model, d_model)`` with ``PE(pos+k) = M_k
    PE(pos)``."""

    hint = (
        "block i acts on (sin a, cos a) and must give (sin(a+b), cos(a+b)) with b = k * omega_i: "
        "[[cos b, sin b], [-sin b, cos b]]."
    )
    cases = [
        Case(f"k={k}, d_model={d}", (k, d), hint=hint)
        for k, d in ((0, 2), (1, 2), (3, 8), (10, 16))
    ]
    return check_exercise(
        "shift as a rotation", fn, shift_rotation_matrix, cases, atol=1e-5, verbose=verbose
    ).function


def check_apply_rope(fn, verbose: bool = True):
    """Checker for the exercise ``fn(x (L, head_dim)) -> x`` rotated pairwise (interleaved) at
    positions 0..L-1."""

    g = torch.Generator().manual_seed(4)
    hint = (
        "pair (x[2i], x[2i+1]) at position m turns by theta = m * omega_i: "
        "(x0 cos - x1 sin, x0 sin + x1 cos)."
    )
    cases = [
        Case(
            "x (1, 2): position 0 does not move",
            (torch.tensor([[1.0, 2.0]]),),
            hint="at m = 0 every angle is 0.",
        ),
        Case("x (3, 2)", (torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),), hint=hint),
        Case("x (6, 8) random", (torch.randn(6, 8, generator=g),), hint=hint),
        Case(
            "x (2, 5, 16) with a batch axis",
            (torch.randn(2, 5, 16, generator=g),),
            hint="work on the last two axes (L, head_dim) so leading axes broadcast.",
        ),
    ]
    return check_exercise(
        "rotary embedding", fn, apply_rope, cases, atol=1e-5, verbose=verbose
    ).function


# ---------------------------------------------------------------- figures (lesson 03)


def _numpy(x):
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)


def position_similarity_figure(similarities: dict):
    """Cosine similarities between the positions of position tables, e.g.
    ``{"MiniLM, learned": sim_a, "sinusoidal": sim_b}`` with each ``sim`` an ``(n, n)`` matrix
    (``positional.cosine_similarity_matrix``).

    Left: the matrices side by side on one -1..1 scale with one colourbar. Right: for each table,
    the mean similarity of two positions against their distance ``|i - j|``. Returns the figure.
    """
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
