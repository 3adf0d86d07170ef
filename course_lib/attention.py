"""Scaled dot-product attention, from the formula.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

Shapes: ``q`` is ``(..., L, d_k)``, ``k`` is ``(..., S, d_k)``, ``v`` is ``(..., S, d_v)``; the
leading dimensions (batch, heads) must broadcast. The result is ``(..., L, d_v)``.

Masks follow ``torch.nn.functional.scaled_dot_product_attention``:
- a **boolean** mask is True where a query may look at a key;
- a **float** (additive) mask is added to the scores (0 to keep, ``-inf`` to block).
Either must broadcast to ``(..., L, S)``.

A query row whose keys are all masked has nothing to attend to. Here it gets all-zero weights
and an all-zero output, and the other rows are untouched (no NaN leaks, in the output or in the
gradients). This is also what ``torch.nn.functional.scaled_dot_product_attention`` returns in
torch 2.13, whereas a textbook ``torch.softmax`` over an all ``-inf`` row gives NaN.
"""

from __future__ import annotations

import math

import torch

from .runtime.exercises import Case, check_exercise


def dot_product_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All pairwise dot products: ``a`` is ``(..., n, d)``, ``b`` is ``(..., m, d)``; result
    ``(..., n, m)``."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"dot products need the same last dimension: got a {tuple(a.shape)} and "
            f"b {tuple(b.shape)}; expected a (..., n, d) and b (..., m, d)"
        )
    return a @ b.transpose(-2, -1)


def naive_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(x) / sum(exp(x))`` as written: overflows to NaN once ``x`` exceeds about 88 in
    float32."""
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax: ``exp(x - max) / sum(exp(x - max))``.

    Subtracting the row maximum changes nothing mathematically but keeps every ``exp`` <= 1.
    A row that is entirely ``-inf`` (fully masked) returns zeros instead of NaN.
    """
    row_max = x.amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(x - row_max)
    total = e.sum(dim=dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def causal_mask(L: int, S: int | None = None, device=None) -> torch.Tensor:
    """Boolean ``(L, S)`` mask, True on and below the diagonal: position i sees keys 0..i.

    Aligned to the top left, like ``is_causal=True`` in PyTorch.
    """
    S = L if S is None else S
    if L < 1 or S < 1:
        raise ValueError(f"causal_mask needs positive sizes, got L={L}, S={S}")
    return torch.ones(L, S, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, S: int | None = None) -> torch.Tensor:
    """Boolean ``(B, 1, S)`` key mask, True for real tokens, from a sequence of lengths.

    The middle dimension lets it broadcast over the query positions of ``(B, L, S)`` scores;
    add a head dimension with ``.unsqueeze(1)`` for ``(B, H, L, S)``.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D (one per sequence), got shape {tuple(lengths.shape)}"
        )
    S = int(lengths.max()) if S is None else S
    if (lengths > S).any() or (lengths < 0).any():
        raise ValueError(f"lengths must lie in [0, {S}], got {lengths.tolist()}")
    return (torch.arange(S, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


def to_additive_mask(mask: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Boolean mask (True = keep) -> additive mask (0 = keep, -inf = block)."""
    if mask.dtype != torch.bool:
        raise ValueError(f"to_additive_mask expects a boolean mask, got dtype {mask.dtype}")
    zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return zeros.masked_fill(~mask, float("-inf"))


def _check_inputs(q, k, v, mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have at least 2 dimensions (..., seq, dim), got shape "
                f"{tuple(t.shape)}"
            )
    shapes = f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the last dimension d_k: {shapes}; expected q (..., L, d_k), "
            f"k (..., S, d_k)"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions S: {shapes}; expected "
            f"k (..., S, d_k), v (..., S, d_v)"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head) dimensions do not broadcast: {shapes}"
        ) from None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise ValueError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise ValueError(
                "mask must be boolean (True = attend) or floating (additive), got dtype "
                f"{mask.dtype}"
            )
        scores = (*batch, q.shape[-2], k.shape[-2])
        try:
            if torch.broadcast_shapes(mask.shape, scores) != torch.Size(scores):
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                f"{scores} (..., L, S); {shapes}"
            ) from None


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """``softmax(q k^T * scale + mask)``, shape ``(..., L, S)``; ``scale`` defaults to
    ``1/sqrt(d_k)``."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = dot_product_similarity(q, k) * scale
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    return softmax(scores, dim=-1)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """``softmax(q k^T / sqrt(d_k) + mask) v``.

    q ``(..., L, d_k)``, k ``(..., S, d_k)``, v ``(..., S, d_v)`` -> ``(..., L, d_v)``; with
    ``return_weights=True`` also the ``(..., L, S)`` weights. ``mask`` is boolean (True = attend)
    or additive; ``is_causal`` adds a top-left causal mask. Dropout, if any, is applied to the
    weights (training only; pass 0 to compare with a reference).
    """
    _check_inputs(q, k, v, mask)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    weights = attention_weights(q, k, mask, is_causal, scale)
    if dropout_p > 0:
        weights = torch.nn.functional.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out


def qk_variance(d_k: int, n_samples: int = 20000, seed: int = 0) -> float:
    """Sample variance of ``q . k`` for q, k with i.i.d. N(0, 1) entries: about ``d_k``."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n_samples, d_k, generator=g, dtype=torch.float64)
    k = torch.randn(n_samples, d_k, generator=g, dtype=torch.float64)
    return (q * k).sum(-1).var().item()


def mean_max_weight(
    d_k: int, n_keys: int = 16, scaled: bool = True, n_samples: int = 2000, seed: int = 0
) -> float:
    """Average largest softmax weight over random queries: near 1 means the softmax saturated."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n_samples, 1, d_k, generator=g)
    k = torch.randn(n_samples, n_keys, d_k, generator=g)
    scale = 1.0 / math.sqrt(d_k) if scaled else 1.0
    return attention_weights(q, k, scale=scale).amax(-1).mean().item()


# ---------------------------------------------------------------- exercise checkers (lesson 01)


def check_softmax(fn, verbose: bool = True):
    """Checker for the stable-softmax exercise; returns the function to use from here on."""

    g = torch.Generator().manual_seed(1)
    cases = [
        Case("a small row", (torch.tensor([[1.0, 2.0, 3.0]]),)),
        Case("a batch of random rows", (torch.randn(4, 7, generator=g),)),
        Case(
            "large scores (1000)",
            (torch.tensor([[1000.0, 999.0, 998.0]]),),
            hint="exp(1000) overflows float32; subtract the row maximum before exp.",
        ),
        Case(
            "very negative scores (-1000)",
            (torch.tensor([[-1000.0, -1001.0]]),),
            hint="exp(-1000) underflows to 0, so 0/0; subtracting the max fixes this too.",
        ),
        Case(
            "softmax over dim=0",
            (torch.randn(3, 5, generator=g),),
            {"dim": 0},
            hint="use the `dim` argument for max and sum, with keepdim=True.",
        ),
    ]
    return check_exercise("stable softmax", fn, softmax, cases, verbose=verbose).function


def check_causal_mask(fn, verbose: bool = True):
    """Checker for the causal-mask exercise (``fn(L) -> (L, L) bool``, True = may attend)."""

    hint = (
        "rows are queries and columns are keys: row i must be True in columns 0..i (the key at "
        "i itself included) and False after it. Check which way round your triangle is."
    )
    cases = [Case(f"L = {n}", (n,), hint=hint) for n in (1, 2, 5, 8)]
    return check_exercise("causal mask", fn, causal_mask, cases, verbose=verbose).function
