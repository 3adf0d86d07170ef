"""A small GPT-style decoder built from the course's own parts, following the Llama architecture.

A decoder-only transformer predicts the next token from the tokens before it:

    p(x_1 .. x_T) = prod_t p(x_t | x_<t),    loss = mean_t -log p(x_t | x_<t)   (cross-entropy)

The architecture is Llama's (Touvron et al., 2023), the one most open models follow today:

    h = E[x]                                          token embedding, no position table
    for each block:  h = h + Attn(RMSNorm(h))          pre-norm, causal, rotary positions on q, k
                     h = h + SwiGLU(RMSNorm(h))        W_down (silu(W_gate h) * W_up h)
    logits = RMSNorm(h) E^T                           output layer tied to the embedding

No linear layer has a bias. The attention is ``course_lib.attention.scaled_dot_product_attention``
with ``course_lib.attention.causal_mask``, the heads are cut by ``course_lib.multihead``, and the
rotation is ``course_lib.positional``'s rotate-half RoPE (the layout Hugging Face's Llama uses).
``to_hf`` / ``from_hf`` copy the weights to and from ``transformers.LlamaForCausalLM`` through a
name map, which is how the tests show the two compute the same logits.

Shapes: ``B`` batch, ``L`` new positions, ``P`` cached positions, ``S = P + L`` keys,
``D = d_model``, ``H`` heads, ``d_head = D / H``, ``V`` vocabulary.

Below the model: tokenizer, training, n-gram baselines; generation is in course_lib.generation.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .artifacts import SUMMARY_FILE  # saved next to the model: config, curves, timings
from .attention import causal_mask, scaled_dot_product_attention
from .batching import length_bucketed_batches
from .multihead import merge_heads, split_heads
from .positional import rope_cos_sin, rotate_half
from .runtime.environment import pick_device
from .settings import REUSE_MODELS_ENV, artifacts_dir, env_flag
from .train import warmup_linear_factor

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


# ---------------------------------------------------------------- Hugging Face: Llama


def hf_name_map(n_layers: int) -> dict[str, str]:
    """Our parameter names -> ``LlamaForCausalLM``'s (the tied ``lm_head.weight`` is ``embed``)."""
    names = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
    ours_hf = {
        "attn_norm.weight": "input_layernorm.weight",
        "mlp_norm.weight": "post_attention_layernorm.weight",
        **{f"attn.{p}.weight": f"self_attn.{p}_proj.weight" for p in "qkvo"},
        **{f"mlp.{p}.weight": f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")},
    }
    for i in range(n_layers):
        for ours, hf in ours_hf.items():
            names[f"blocks.{i}.{ours}"] = f"model.layers.{i}.{hf}"
    return names


def to_hf_config(cfg: GPTConfig):
    """The ``transformers.LlamaConfig`` of the same model."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_positions,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
    )


def from_hf_config(hf) -> GPTConfig:
    """``GPTConfig`` from a ``LlamaConfig``; refuses what this decoder does not implement."""
    if hf.num_key_value_heads != hf.num_attention_heads or not hf.tie_word_embeddings:
        raise ValueError(
            "this decoder needs num_key_value_heads == num_attention_heads and tied embeddings; "
            f"got {hf.num_key_value_heads} vs {hf.num_attention_heads}, "
            f"tie_word_embeddings={hf.tie_word_embeddings}"
        )
    return GPTConfig(
        vocab_size=hf.vocab_size,
        d_model=hf.hidden_size,
        n_layers=hf.num_hidden_layers,
        n_heads=hf.num_attention_heads,
        d_ff=hf.intermediate_size,
        max_positions=hf.max_position_embeddings,
        rope_base=float((hf.rope_parameters or {}).get("rope_theta", 10000.0)),
        norm_eps=hf.rms_norm_eps,
        bos_token_id=hf.bos_token_id,
        eos_token_id=hf.eos_token_id,
        pad_token_id=hf.pad_token_id,
    )


def from_hf(hf_model) -> GPT:
    """Our ``GPT`` with the weights of a ``LlamaForCausalLM`` (through ``hf_name_map``)."""
    cfg = from_hf_config(hf_model.config)
    model = GPT(cfg)
    hf_state = hf_model.state_dict()
    model.load_state_dict({ours: hf_state[hf] for ours, hf in hf_name_map(cfg.n_layers).items()})
    return model.eval()


def to_hf(model: GPT):
    """A ``transformers.LlamaForCausalLM`` holding a copy of ``model``'s weights."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(to_hf_config(model.config))
    ours = model.state_dict()
    state = {hf_name: ours[name] for name, hf_name in hf_name_map(model.config.n_layers).items()}
    unknown = set(hf.state_dict()) - set(state) - {"lm_head.weight"}  # lm_head is tied to E
    if unknown:
        raise ValueError(f"no weights for {sorted(unknown)[:3]}: the name map is incomplete")
    hf.load_state_dict(state, strict=False)
    hf.tie_weights()
    return hf.eval()


def save_pretrained(model: GPT, tokenizer, folder, summary: dict | None = None):
    """Write ``model`` as a Llama checkpoint plus its tokenizer to ``folder`` (Hugging Face format),
    so ``transformers.pipeline("text-generation", model=folder)`` runs it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)
    try:  # written next to the target, then renamed: a half-written folder is never left behind
        hf = to_hf(model)
        hf.generation_config.pad_token_id = model.config.pad_token_id
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if summary is not None:
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_pretrained(folder):
    """``(GPT, tokenizer)`` from a folder written by ``save_pretrained`` (or any tied Llama)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(folder)
    return from_hf(hf), AutoTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------- the tokenizer

PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2: GPTConfig's defaults


def train_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for Hugging Face.

    Lower-cased (a small model spends its few parameters better on one spelling of a word than
    on two); byte-level, so any text encodes without an unknown token. Encoding adds ``<s>`` in
    front, so a prompt from ``pipeline("text-generation")`` starts the way every training tweet
    did. Returns a ``PreTrainedTokenizerFast`` (``save_pretrained`` writes ``tokenizer.json``).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be at least 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def encode_tweets(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """``[<s>, t_1 .. t_n, </s>]`` per text, cut to ``max_len`` tokens (the end is then lost)."""
    ids = tokenizer(list(texts))["input_ids"]
    return [(row + [tokenizer.eos_token_id])[:max_len] for row in ids]


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


def ngram_perplexities(
    train_rows: list[list[int]], val_rows: list[list[int]], vocab_size: int, k: float = 0.01
) -> dict[str, float]:
    """Unigram and bigram perplexity on the same predicted tokens as ``perplexity``.

    Add-k smoothing, counts from ``train_rows``:
    ``p(t) = (c(t) + k) / (N + kV)`` and ``p(t | u) = (c(u, t) + k) / (c(u) + kV)``.
    """
    import numpy as np

    V = vocab_size
    uni, bi = np.zeros(V), np.zeros((V, V))
    for r in train_rows:
        a = np.asarray(r)
        np.add.at(uni, a[1:], 1)
        np.add.at(bi, (a[:-1], a[1:]), 1)
    p_uni = (uni + k) / (uni.sum() + k * V)
    p_bi = (bi + k) / (bi.sum(1, keepdims=True) + k * V)
    prev = np.concatenate([r[:-1] for r in val_rows])
    nxt = np.concatenate([r[1:] for r in val_rows])
    return {
        "unigram": float(np.exp(-np.log(p_uni[nxt]).mean())),
        "bigram": float(np.exp(-np.log(p_bi[prev, nxt]).mean())),
        "tokens": int(len(nxt)),
    }


# ---------------------------------------------------------------- training from scratch


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained model; a saved model is reused only for an equal one."""

    vocab_size: int = 1024
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 344
    max_len: int = 64
    batch_size: int = 32
    steps: int = 1000
    lr: float = 4e-3
    warmup_steps: int = 30
    weight_decay: float = 0.1
    eval_every: int = 200
    eval_tweets: int = 300
    patience: int = 3
    seed: int = 0

    def model_config(self) -> GPTConfig:
        return GPTConfig(self.vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff)


def train_gpt(
    train_texts, val_texts, config: TrainConfig = TrainConfig(), progress=True, device=None
):
    """Train tokenizer and decoder from scratch; keep the weights with the best validation loss.

    Returns ``(model, tokenizer, log)``; ``log`` holds the loss per step, the validation
    evaluations, the seconds spent, and whether it stopped early (``patience`` evaluations
    without improvement). Validation during training uses the first ``eval_tweets`` tweets.
    ``device`` defaults to CUDA when present; the model comes back on the CPU.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    rows = encode_tweets(tokenizer, train_texts, config.max_len)
    val_rows = encode_tweets(tokenizer, val_texts[: config.eval_tweets], config.max_len)
    device = device or pick_device()
    model = GPT(config.model_config()).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # no weight decay on norm gains
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_linear_factor(s, config.warmup_steps, config.steps)
    )
    log = {"history": [], "evaluations": [], "train_seconds": 0.0, "stopped_early": False}
    best, best_state, since_best, step, epoch = math.inf, None, 0, 0, 0
    # a few redraws a second, not one per step: a flood of widget messages can stall nbval
    bar = tqdm(total=config.steps, desc="training", disable=not progress, mininterval=0.5)
    lengths = [len(r) for r in rows]
    while step < config.steps and not log["stopped_early"]:
        for b in length_bucketed_batches(lengths, config.batch_size, seed=config.seed + epoch):
            t0 = time.perf_counter()
            model.train()
            ids = right_padded([rows[i] for i in b]).to(device)
            loss = next_token_loss(model(ids).logits, ids)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            log["train_seconds"] += time.perf_counter() - t0
            log["history"].append({"step": step, "loss": loss.item()})
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.2f}", refresh=False)
            if step % config.eval_every == 0 or step == config.steps:
                val_loss = math.log(perplexity(model, val_rows))
                log["evaluations"].append({"step": step, "val_loss": val_loss})
                if val_loss < best:
                    best, since_best = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                    log["stopped_early"] = since_best >= config.patience
            if step >= config.steps or log["stopped_early"]:
                break
        epoch += 1
    bar.close()
    model.load_state_dict(best_state)
    model.cpu()
    log["epochs"] = round(step * config.batch_size / len(rows), 2)
    return model.eval(), tokenizer, log


def default_folder():
    """``artifacts/gpt-tweets`` at the repository root (or under ``$COURSE_ARTIFACTS``)."""
    return artifacts_dir() / "gpt-tweets"


def trained_gpt(config: TrainConfig = TrainConfig(), folder=None, reuse=None, progress=True):
    """Train on the course's training split and save, or reuse an identical earlier run.

    ``reuse`` defaults to the environment variable ``COURSE_REUSE_MODELS`` (off: always train).
    A saved model is reused only when its ``training_summary.json`` records the same config.
    Returns ``(model, tokenizer, summary)`` and prints which of the two happened.
    """
    from .data import load_split

    folder = default_folder() if folder is None else Path(folder)
    reuse = env_flag(REUSE_MODELS_ENV) if reuse is None else reuse
    summary_file = folder / SUMMARY_FILE
    if reuse and summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if summary.get("config") == asdict(config):
            print(f"Reused the model trained earlier with the same config ({folder.name}/).")
            model, tokenizer = load_pretrained(folder)
            return model, tokenizer, summary
    train_texts, _ = load_split("train")
    val_texts, _ = load_split("validation")
    model, tokenizer, log = train_gpt(train_texts, val_texts, config, progress)
    summary = {
        "config": asdict(config),
        "parameters": model.num_parameters(),
        "train_tweets": len(train_texts),
        "threads": torch.get_num_threads(),
        **log,
    }
    save_pretrained(model, tokenizer, folder, summary)
    print(f"Trained a new model in {log['train_seconds']:.0f} s and saved it to {folder.name}/.")
    return model, tokenizer, summary
