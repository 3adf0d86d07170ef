"""Multi-head attention, built on ``course_lib.attention``.

    head_h = Attention(X_q W^Q_h, X_k W^K_h, X_v W^V_h)            for h = 1..H
    MultiHead(X_q, X_k, X_v) = Concat(head_1, ..., head_H) W^O

All H heads' projections are stored as one ``(D, D)`` matrix each for Q, K and V: projecting
once with the full matrix and then cutting the last dimension into H slices of size
``d_head = D / H`` (``split_heads``) is the same as H separate ``(D, d_head)`` projections, and
much faster. ``merge_heads`` undoes the cut before the output projection ``W^O``.

Shapes: ``B`` batch, ``L`` query positions, ``S`` key/value positions, ``D = d_model``,
``H = n_heads``, ``d_head = D / H``. Inputs are batch-first ``(B, L, D)``.

Mask conventions (the same as ``course_lib.attention``, True means "may attend"):

- ``key_padding_mask`` ``(B, S)`` (or ``(B, 1, S)``, as made by ``attention.padding_mask``):
  boolean True = a real token, integer 1 = a real token (Hugging Face's ``attention_mask``
  from a tokenizer can be passed as it is), floating = added to the scores (0 keep, -inf block).
- ``attn_mask`` ``(L, S)``, ``(B, L, S)``, ``(B*H, L, S)`` or ``(B, H, L, S)``: boolean True =
  may attend, or floating = additive.

PyTorch's ``nn.MultiheadAttention`` uses the OPPOSITE boolean convention (True = ignore) for
both masks; ``masks_from_torch`` converts them.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import scaled_dot_product_attention, to_additive_mask
from .runtime.exercises import Case, check_exercise

# ---------------------------------------------------------------- reshapes


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(B, L, D)`` -> ``(B, H, L, D/H)``: cut the features into H heads, heads before positions.

    Head ``h`` gets features ``h*d_head .. (h+1)*d_head - 1``. Moving the head axis next to the
    batch axis makes every head an independent attention problem for the batched matmul.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"split_heads expects x of shape (B, L, D), got {shape}")
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads must be a positive int, got {n_heads!r}")
    B, L, D = x.shape
    if D % n_heads != 0:
        raise ValueError(
            f"split_heads: D={D} of x {tuple(x.shape)} is not divisible by n_heads={n_heads}; "
            f"expected (B, L, D) with D a multiple of n_heads"
        )
    return x.reshape(B, L, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, L, d_head)`` -> ``(B, L, H*d_head)``: the inverse of ``split_heads`` (concatenate
    heads)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"merge_heads expects x of shape (B, H, L, d_head), got {shape}")
    B, H, L, d = x.shape
    # reshape (not view): after the transpose the memory is not contiguous.
    return x.transpose(1, 2).reshape(B, L, H * d)


# ---------------------------------------------------------------- masks


def masks_from_torch(
    key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
):
    """Convert masks written for ``torch.nn.MultiheadAttention`` to this module's convention.

    PyTorch: boolean True = IGNORE this key. Here: boolean True = may attend. So boolean masks
    are inverted; floating (additive) masks mean the same in both and pass through unchanged.
    Returns ``(key_padding_mask, attn_mask)``.
    """

    def convert(m):
        if m is None:
            return None
        return ~m if m.dtype == torch.bool else m

    return convert(key_padding_mask), convert(attn_mask)


def _key_padding_as_mask(kpm: torch.Tensor, B: int, S: int) -> torch.Tensor:
    """``(B, S)`` or ``(B, 1, S)`` key mask -> ``(B, 1, 1, S)``, boolean (True = keep) or
    additive."""
    if not isinstance(kpm, torch.Tensor):
        raise ValueError(f"key_padding_mask must be a torch.Tensor, got {type(kpm).__name__}")
    if kpm.dim() == 3 and kpm.shape[1] == 1:
        kpm = kpm[:, 0]
    if tuple(kpm.shape) != (B, S):
        raise ValueError(
            f"key_padding_mask has shape {tuple(kpm.shape)}, expected (B, S) = {(B, S)} "
            f"(or (B, 1, S)), one entry per key"
        )
    if kpm.dtype != torch.bool and not kpm.is_floating_point():
        kpm = kpm != 0  # integer 0/1 as from a tokenizer: 1 = real token
    return kpm[:, None, None, :]


def _attn_as_mask(am: torch.Tensor, B: int, H: int, L: int, S: int) -> torch.Tensor:
    """Bring ``attn_mask`` to a shape that broadcasts to ``(B, H, L, S)``."""
    if not isinstance(am, torch.Tensor):
        raise ValueError(f"attn_mask must be a torch.Tensor, got {type(am).__name__}")
    if am.dtype != torch.bool and not am.is_floating_point():
        raise ValueError(
            f"attn_mask must be boolean (True = may attend) or floating (additive), got {am.dtype}"
        )
    expected = (
        f"expected (L, S) = {(L, S)}, (B, L, S), (B*H, L, S) = {(B * H, L, S)} "
        f"or (B, H, L, S) = {(B, H, L, S)}"
    )
    given = tuple(am.shape)  # name the shape the caller passed, not a reshaped one
    if am.dim() == 2:
        am = am[None, None]
    elif am.dim() == 3 and tuple(am.shape[1:]) == (L, S):
        if am.shape[0] == B * H:  # PyTorch's layout: batch-major, then heads
            am = am.reshape(B, H, L, S)
        elif am.shape[0] in (B, 1):
            am = am[:, None]
        else:
            raise ValueError(f"attn_mask has shape {given}; {expected}")
    elif am.dim() != 4:
        raise ValueError(f"attn_mask has shape {given}; {expected}")
    try:
        if torch.broadcast_shapes(am.shape, (B, H, L, S)) != torch.Size((B, H, L, S)):
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"attn_mask has shape {given}; {expected}") from None
    return am


def combine_masks(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """Both masks must allow a pair for it to be allowed: AND of booleans, sum of additive masks."""
    if a is None or b is None:
        return a if b is None else b
    if a.dtype == torch.bool and b.dtype == torch.bool:
        return a & b
    dtype = a.dtype if a.is_floating_point() else b.dtype
    a = to_additive_mask(a, dtype) if a.dtype == torch.bool else a
    b = to_additive_mask(b, dtype) if b.dtype == torch.bool else b
    return a + b


# ---------------------------------------------------------------- the module


class MultiHeadAttention(nn.Module):
    """Multi-head attention with four ``(D, D)`` projections: ``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``.

    ``forward(query (B, L, D), key (B, S, D) = query, value (B, S, D) = key)`` returns
    ``(out (B, L, D), weights (B, H, L, S) or None)``. Weights are per head (not averaged) and
    are returned only when ``need_weights=True``. ``dropout`` acts on the attention weights in
    training mode only.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if (
            not isinstance(d_model, int)
            or not isinstance(n_heads, int)
            or d_model < 1
            or n_heads < 1
        ):
            raise ValueError(
                f"d_model and n_heads must be positive ints, got d_model={d_model!r}, "
                f"n_heads={n_heads!r}"
            )
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}: each head gets "
                "d_model/n_heads features"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}, "
            f"dropout={self.dropout}"
        )

    def _check(self, query, key, value):
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[-1] != self.d_model:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(
                    f"{name} has shape {shape}, expected (B, seq, d_model={self.d_model}) (batch "
                    "first)"
                )
        if not (query.shape[0] == key.shape[0] == value.shape[0]):
            raise ValueError(
                f"batch sizes differ: query {tuple(query.shape)}, key {tuple(key.shape)}, "
                f"value {tuple(value.shape)}"
            )
        if key.shape[1] != value.shape[1]:
            raise ValueError(
                f"key {tuple(key.shape)} and value {tuple(value.shape)} need the same number of "
                "positions S"
            )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        is_causal: bool = False,
    ):
        key = query if key is None else key  # self-attention by default
        value = key if value is None else value  # cross-attention usually has value = key
        self._check(query, key, value)
        B, L, _ = query.shape
        S = key.shape[1]
        H = self.n_heads

        q = split_heads(self.q_proj(query), H)  # (B, H, L, d_head)
        k = split_heads(self.k_proj(key), H)  # (B, H, S, d_head)
        v = split_heads(self.v_proj(value), H)  # (B, H, S, d_head)

        mask = combine_masks(
            None if key_padding_mask is None else _key_padding_as_mask(key_padding_mask, B, S),
            None if attn_mask is None else _attn_as_mask(attn_mask, B, H, L, S),
        )
        p = self.dropout if self.training else 0.0
        heads, weights = scaled_dot_product_attention(
            q, k, v, mask, is_causal=is_causal, dropout_p=p, return_weights=True
        )
        out = self.out_proj(merge_heads(heads))  # (B, L, D)
        return out, (weights if need_weights else None)

    # ------------------------------------------------------------ loading weights

    @torch.no_grad()
    def copy_weights_from_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` of the same size into this module.

        PyTorch stacks W^Q, W^K, W^V into one ``in_proj_weight`` of shape ``(3D, D)`` (rows in
        that order) and ``in_proj_bias`` ``(3D,)``; ``out_proj`` is an ordinary Linear. The
        weights do not depend on ``batch_first``; this module is always batch-first, so compare
        with a ``batch_first=True`` module (or transpose the inputs of the other kind).
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"expected a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if (mha.embed_dim, mha.num_heads) != (self.d_model, self.n_heads):
            raise ValueError(
                f"size mismatch: torch module has embed_dim={mha.embed_dim}, "
                f"num_heads={mha.num_heads}; "
                f"this one d_model={self.d_model}, n_heads={self.n_heads}"
            )
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(
                "only the plain form is supported: kdim = vdim = embed_dim, add_bias_kv=False, "
                "add_zero_attn=False"
            )
        if (mha.in_proj_bias is None) != (self.q_proj.bias is None):
            raise ValueError(
                f"bias mismatch: torch module bias={mha.in_proj_bias is not None}, "
                f"this one bias={self.q_proj.bias is not None}"
            )
        for proj, w in zip(
            (self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3, dim=0)
        ):
            proj.weight.copy_(w)
        if mha.in_proj_bias is not None:
            for proj, b in zip(
                (self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.chunk(3, dim=0)
            ):
                proj.bias.copy_(b)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if self.out_proj.bias is not None:
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A new module with the weights (and dropout) of a ``torch.nn.MultiheadAttention``."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"expected a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        new = cls(
            mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None, dropout=mha.dropout
        )
        new = new.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        return new.copy_weights_from_torch(mha)

    @staticmethod
    def _hf_bert_parts(layer):
        """(self-attention, output dense) of a Hugging Face ``BertLayer`` or ``BertAttention``."""
        attention = getattr(layer, "attention", layer)  # BertLayer -> BertAttention
        self_attn = getattr(attention, "self", None)
        output = getattr(attention, "output", None)
        if (
            self_attn is None
            or output is None
            or not hasattr(self_attn, "query")
            or not hasattr(output, "dense")
        ):
            raise ValueError(
                f"expected a Hugging Face BertLayer or BertAttention (with .self.query/key/value "
                f"and .output.dense), got {type(layer).__name__}"
            )
        return self_attn, output.dense

    @torch.no_grad()
    def copy_weights_from_hf_bert(self, layer) -> MultiHeadAttention:
        """Copy a Hugging Face BERT layer's attention weights into this module.

        Mapping (``modeling_bert.py`` names -> ours): ``attention.self.query/key/value`` ->
        ``q_proj/k_proj/v_proj``; ``attention.output.dense`` -> ``out_proj``. The residual
        connection, dropout and ``attention.output.LayerNorm`` that follow the dense layer in BERT
        are not part of multi-head attention and are not copied.
        """
        self_attn, dense = self._hf_bert_parts(layer)
        if (dense.in_features, self_attn.num_attention_heads) != (self.d_model, self.n_heads):
            raise ValueError(
                f"size mismatch: BERT layer has hidden={dense.in_features}, "
                f"heads={self_attn.num_attention_heads}; this module d_model={self.d_model}, "
                f"n_heads={self.n_heads}"
            )
        for ours, theirs in (
            (self.q_proj, self_attn.query),
            (self.k_proj, self_attn.key),
            (self.v_proj, self_attn.value),
            (self.out_proj, dense),
        ):
            ours.weight.copy_(theirs.weight)
            if ours.bias is not None:
                ours.bias.copy_(theirs.bias)
        return self

    @classmethod
    def from_hf_bert_layer(cls, layer) -> MultiHeadAttention:
        """A new module equal to ``layer.attention.self`` + ``layer.attention.output.dense`` of a
        HF BERT layer."""
        self_attn, dense = cls._hf_bert_parts(layer)
        new = cls(
            dense.in_features,
            self_attn.num_attention_heads,
            bias=dense.bias is not None,
            dropout=self_attn.dropout.p,
        )
        new = new.to(device=dense.weight.device, dtype=dense.weight.dtype)
        return new.copy_weights_from_hf_bert(layer)


# ---------------------------------------------------------------- size and cost


def parameter_count(d_model: int, n_heads: int, bias: bool = True) -> int:
    """Parameters of multi-head attention: ``4 D^2`` weights (+ ``4 D`` biases).

    It does not depend on ``n_heads``: more heads means narrower heads, same total width.
    """
    if d_model % n_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
    return 4 * d_model * d_model + (4 * d_model if bias else 0)


def attention_cost(
    seq_len: int, d_model: int, n_heads: int, batch: int = 1, bytes_per_value: int = 4
) -> dict:
    """Floating-point operations and memory of one multi-head self-attention forward pass.

    A ``(m, k) @ (k, n)`` matmul costs ``2 m k n`` FLOPs (one multiply, one add). With
    ``N = B * L`` tokens:

    - projections Q, K, V and W^O: ``4 * 2 N D^2``  -- linear in L;
    - scores ``Q K^T`` over all heads: ``2 B L^2 D``   -- quadratic in L;
    - mixing ``weights @ V``: ``2 B L^2 D``           -- quadratic in L.

    Memory: ``attention_weights_bytes`` = the ``(B, H, L, L)`` weight matrices (quadratic in L
    and linear in H); ``activations_bytes`` = q, k, v and the output ``4 B L D``;
    ``parameter_bytes`` = ``4 D^2 + 4 D`` values. Softmax and bias FLOPs are left out (small).
    """
    for name, val in (
        ("seq_len", seq_len),
        ("d_model", d_model),
        ("n_heads", n_heads),
        ("batch", batch),
    ):
        if int(val) < 1:
            raise ValueError(f"{name} must be >= 1, got {val}")
    B, L, D, H = int(batch), int(seq_len), int(d_model), int(n_heads)
    projection = 4 * 2 * B * L * D * D
    scores = 2 * B * L * L * D
    mixing = 2 * B * L * L * D
    return {
        "projection_flops": projection,
        "score_flops": scores,
        "mixing_flops": mixing,
        "total_flops": projection + scores + mixing,
        "attention_weights_bytes": B * H * L * L * bytes_per_value,
        "activations_bytes": 4 * B * L * D * bytes_per_value,
        "parameter_bytes": parameter_count(D, H) * bytes_per_value,
    }


# ---------------------------------------------------------------- exercise checkers (lesson 02)


def check_split_heads(fn, verbose: bool = True):
    """Checker for the split-heads exercise: ``fn(x (B, L, D), n_heads) -> (B, H, L, D/H)``."""

    g = torch.Generator().manual_seed(2)
    hint = (
        "cut the LAST axis (the features) into H groups of D/H first, leaving the positions where "
        "they are; only then move the head axis in front of the positions."
    )
    cases = [
        Case("x (1, 3, 4), 2 heads", (torch.arange(12.0).reshape(1, 3, 4), 2), hint=hint),
        Case("x (2, 5, 12), 3 heads", (torch.randn(2, 5, 12, generator=g), 3), hint=hint),
        Case(
            "x (2, 4, 8), 1 head",
            (torch.randn(2, 4, 8, generator=g), 1),
            hint="one head holds all D features.",
        ),
        Case("x (3, 2, 8), 8 heads", (torch.randn(3, 2, 8, generator=g), 8), hint=hint),
    ]
    return check_exercise("split heads", fn, split_heads, cases, verbose=verbose).function


def check_merge_heads(fn, verbose: bool = True):
    """Checker for the merge-heads exercise: ``fn(x (B, H, L, d)) -> (B, L, H*d)``, inverse of
    split."""

    g = torch.Generator().manual_seed(3)
    hint = (
        "undo split_heads in reverse order: first bring the positions back in front of the heads, "
        "then join the last two axes (H, d) into one of size H * d."
    )
    cases = [
        Case("x (1, 2, 3, 2)", (torch.arange(12.0).reshape(1, 2, 3, 2),), hint=hint),
        Case("x (2, 3, 5, 4)", (torch.randn(2, 3, 5, 4, generator=g),), hint=hint),
        Case("x (2, 1, 4, 8)", (torch.randn(2, 1, 4, 8, generator=g),), hint=hint),
    ]
    return check_exercise("merge heads", fn, merge_heads, cases, verbose=verbose).function


def check_parameter_count(fn, verbose: bool = True):
    """Checker for the parameter-count exercise: ``fn(d_model, n_heads, bias=True) -> int``."""

    hint = (
        "four (D, D) weight matrices (Q, K, V, output) and, with bias, four vectors of length D; "
        "the number of heads only decides how the D columns are grouped."
    )
    cases = [
        Case(f"d_model={d}, n_heads={h}, bias={b}", (d, h), {"bias": b}, hint=hint)
        for d, h, b in ((4, 2, True), (384, 12, True), (384, 1, True), (512, 8, False))
    ]
    return check_exercise("parameter count", fn, parameter_count, cases, verbose=verbose).function


# ---------------------------------------------------------------- figures (lesson 02)


def attention_cost_figure(
    lengths, widths, models=((384, 12), (768, 12)), width_lengths=(128, 2048)
):
    """Three log-log panels of ``multihead.attention_cost`` (batch 1): compute against sequence
    length, memory against sequence length (one pair of lines per ``(d_model, n_heads)`` in
    ``models``), and compute against width (H = 12) at the lengths ``width_lengths``.

    The ``(B, H, L, L)`` weights do not depend on the width, so their line is drawn once per
    number of heads. Returns the figure.
    """
    import matplotlib.pyplot as plt

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
