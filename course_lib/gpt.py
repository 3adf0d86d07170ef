"""A small GPT-style decoder built from the course's own parts, following the Llama architecture.

A decoder-only transformer predicts the next token from the tokens before it:

    p(x_1 .. x_T) = prod_t p(x_t | x_<t),    loss = mean_t -log p(x_t | x_<t)   (cross-entropy)

The architecture is Llama's (Touvron et al., 2023), the one most open models follow today:

    h = E[x]                                          token embedding, no position table
    for each block:  h = h + Attn(RMSNorm(h))          pre-norm, causal, rotary positions on q, k
                     h = h + SwiGLU(RMSNorm(h))        W_down (silu(W_gate h) * W_up h)
    logits = RMSNorm(h) E^T                           output layer tied to the embedding

One departure from Llama 1 and 2: they keep a separate output matrix ``W_out`` (V x D), while
this decoder reuses the embedding ``E`` (tied, as GPT-2 and the small Llama 3.2 models do): with
lesson 09's 1,024 tokens and D = 128 that saves 131 k of its 920 k parameters.

No linear layer has a bias. The attention is ``course_lib.attention.scaled_dot_product_attention``
with ``course_lib.attention.causal_mask``, the heads are cut by ``course_lib.multihead``, and the
rotation is ``course_lib.positional``'s rotate-half RoPE (the layout Hugging Face's Llama uses).
``course_lib.gpt_hf`` copies the weights to and from ``transformers.LlamaForCausalLM`` through a
name map, which is how the tests show the two compute the same logits.

Shapes: ``B`` batch, ``L`` new positions, ``P`` cached positions, ``S = P + L`` keys,
``D = d_model``, ``H`` heads, ``d_head = D / H``, ``V`` vocabulary.

Below the model: the next-token loss and perplexity. The tokenizer, the training and the n-gram
baselines are in ``course_lib.gpt_train``; generation is in ``course_lib.generation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .attention import causal_mask, scaled_dot_product_attention
from .multihead import merge_heads, split_heads
from .positional import rope_cos_sin, rotate_half
from .runtime.exercises import Case, check_exercise

# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GPTConfig:
    """Sizes of the decoder. ``d_ff`` is the SwiGLU hidden width (Llama uses about 8/3 * D)."""

    vocab_size: int = 2048
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 344
    max_positions: int = 128
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    def __post_init__(self):
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"d_model={self.d_model} must split into n_heads={self.n_heads} heads of an even "
                f"size (RoPE rotates pairs of features)"
            )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


# ---------------------------------------------------------------- the parts


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x^2) + eps) * g``: LayerNorm without the mean and the bias (Llama).

    ``x`` ``(..., D)`` -> ``(..., D)``. Computed in float32 whatever the input dtype, as Llama does.
    """

    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


class SwiGLU(nn.Module):
    """``W_down (silu(W_gate x) * W_up x)``: a gated MLP, ``(..., D)`` -> ``(..., D)``."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate, self.up = (nn.Linear(d_model, d_ff, bias=False) for _ in range(2))
        self.down = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def rope_tables(position_ids: torch.Tensor, d_head: int, base: float, dtype=torch.float32):
    """``cos``, ``sin`` of shape ``(B, 1, L, d_head)`` for ``position_ids`` ``(B, L)``.

    One row of positions per sequence: with left padding each prompt's first real token is at
    position 0. The tables are ``positional.rope_cos_sin`` in the rotate-half layout.
    """
    shape, dev = (position_ids.shape[0], 1, position_ids.shape[1], d_head), position_ids.device
    tables = rope_cos_sin(position_ids.reshape(-1).cpu(), d_head, base, interleaved=False)
    return tuple(t.reshape(shape).to(dev, dtype) for t in tables)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` for ``x`` ``(B, H, L, d_head)``: ``positional.apply_rope``
    with ``interleaved=False``, but with one row of positions per sequence."""
    return x * cos + rotate_half(x) * sin


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE and an optional KV cache.

    ``forward(x (B, L, D), cos, sin, mask (B, 1, L, S), past=(k, v) each (B, H, P, d_head))``
    returns ``(out (B, L, D), (k, v) each (B, H, S, d_head))``: the keys and values of every
    position so far, ready to be passed back as ``past`` for the next token.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        D, self.n_heads = cfg.d_model, cfg.n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))

    def forward(self, x, cos, sin, mask, past=None):
        q = apply_rotary(split_heads(self.q(x), self.n_heads), cos, sin)
        k = apply_rotary(split_heads(self.k(x), self.n_heads), cos, sin)
        v = split_heads(self.v(x), self.n_heads)
        if past is not None:  # the cache holds keys already rotated to their positions
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        out = scaled_dot_product_attention(q, k, v, mask)
        return self.o(merge_heads(out)), (k, v)


class DecoderBlock(nn.Module):
    """Pre-norm block: ``h + Attn(RMSNorm(h))``, then ``h + SwiGLU(RMSNorm(h))``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.attn_norm, self.mlp_norm = (RMSNorm(cfg.d_model, cfg.norm_eps) for _ in range(2))
        self.attn, self.mlp = CausalSelfAttention(cfg), SwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, h, cos, sin, mask, past=None):
        a, kv = self.attn(self.attn_norm(h), cos, sin, mask, past)
        h = h + a
        return h + self.mlp(self.mlp_norm(h)), kv


def decoder_mask(L: int, S: int, attention_mask: torch.Tensor | None, device=None) -> torch.Tensor:
    """Boolean ``(B or 1, 1, L, S)``, True = may attend: causal, and no padding keys.

    The L new queries are the LAST L of the S positions, so the causal part is the bottom L rows
    of ``causal_mask(S)``. ``attention_mask`` ``(B, S)`` is Hugging Face's: 1 = real token, 0 = pad.
    """
    mask = causal_mask(S, device=device)[S - L :][None, None]
    if attention_mask is not None:
        if attention_mask.dim() != 2 or attention_mask.shape[1] != S:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, S) with "
                f"S={S} (the cached plus the new positions)"
            )
        mask = mask & (attention_mask != 0)[:, None, None, :]
    return mask


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, S)`` positions counting only real tokens: left padding does not shift the prompt.

    ``[0, 0, 1, 1, 1] -> [0, 0, 0, 1, 2]`` (pads get 0; nothing attends to them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (B, L, V)
    cache: list  # per layer (k, v), each (B, H, S, d_head)


class GPT(nn.Module):
    """The Llama-style decoder: ``forward(input_ids (B, L))`` -> ``DecoderOutput(logits, cache)``.

    ``logits`` is ``(B, L, V)``.

    ``attention_mask`` ``(B, P + L)``: 1 for real tokens, 0 for (left) padding, covering the cached
    positions too. ``position_ids`` ``(B, L)`` default to counting real tokens. ``cache`` is the
    ``cache`` of the previous call: only the new tokens go in, the old keys and values are reused.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)  # Llama's initializer_range

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None):
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        B, L = input_ids.shape
        P = cache[0][0].shape[2] if cache else 0
        if position_ids is None:
            if attention_mask is not None:
                position_ids = position_ids_from_mask(attention_mask)[:, P:]
            else:
                position_ids = torch.arange(P, P + L, device=input_ids.device).expand(B, L)
        cos, sin = rope_tables(position_ids, self.config.d_head, self.config.rope_base)
        mask = decoder_mask(L, P + L, attention_mask, input_ids.device)
        h = self.embed(input_ids)
        new_cache = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, cos.to(h.dtype), sin.to(h.dtype), mask, cache[i] if cache else None)
            new_cache.append(kv)
        logits = self.norm(h) @ self.embed.weight.T  # tied output layer: scores against E
        return DecoderOutput(logits, new_cache)


# ---------------------------------------------------------------- loss and perplexity


def right_padded(rows: list[list[int]], pad_id: int = 0) -> torch.Tensor:
    """``(B, longest)`` tensor with ``pad_id`` after each row. Right padding needs no attention
    mask in a causal model: a real token never looks right, so it never sees a pad."""
    out = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r)
    return out


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor, pad_id: int = 0, reduction="mean"):
    """Cross-entropy of predicting ``ids[:, t+1]`` from ``logits[:, t]``, pads ignored.

    ``logits`` ``(B, L, V)`` from ``ids`` ``(B, L)``. ``reduction="sum"`` gives the total negative
    log-likelihood in nats (for perplexity over many batches)."""
    return nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        ids[:, 1:].reshape(-1),
        ignore_index=pad_id,
        reduction=reduction,
    )


@torch.no_grad()
def perplexity(model: GPT, rows: list[list[int]], batch_size: int = 64, device=None) -> float:
    """``exp(mean -log p(x_t | x_<t))`` over every predicted token of ``rows`` (all but ``<s>``)."""
    device = device or next(model.parameters()).device
    model.eval()
    pad = model.config.pad_token_id
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # less padding
    total, count = 0.0, 0
    for s in range(0, len(rows), batch_size):
        ids = right_padded([rows[i] for i in order[s : s + batch_size]], pad).to(device)
        total += next_token_loss(model(ids).logits, ids, pad, reduction="sum").item()
        count += int((ids[:, 1:] != pad).sum())
    return math.exp(total / count)


# ---------------------------------------------------------------- exercise checker (lesson 09)


def check_next_token_loss(fn, verbose: bool = True, show_answer: bool = False):
    """Checker for ``fn(logits (B, L, V), ids (B, L), pad_id) -> scalar``: the mean cross-entropy
    of the next token over the real (non-pad) targets, as ``next_token_loss``."""
    g = torch.Generator().manual_seed(9)
    ids = torch.randint(3, 11, (2, 6), generator=g)
    padded = ids.clone()
    padded[1, 4:] = 0  # the second row is two tokens shorter: right padding
    hint = (
        "the logits at position t are the model's guess of the token that comes after position t. "
        "Which position has no next token to be scored against, and which token has no guess?"
    )
    cases = [
        Case(
            "one row of 5 tokens", (torch.randn(1, 5, 11, generator=g), ids[:1, :5], 0), hint=hint
        ),
        Case("a batch of 2 rows", (torch.randn(2, 6, 11, generator=g), ids, 0), hint=hint),
        Case(
            "a batch with padding",
            (torch.randn(2, 6, 11, generator=g), padded, 0),
            hint="a pad is not a token to predict: cross_entropy's ignore_index leaves it out.",
        ),
    ]
    result = check_exercise(
        "the next-token loss",
        fn,
        next_token_loss,
        cases,
        verbose=verbose,
        show_answer=show_answer,
    )
    return result.function
