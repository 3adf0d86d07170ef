"""BERT, the encoder, from scratch; it loads the real pretrained weights.

    h_0 = LayerNorm(E_word[ids] + E_type[token_type_ids] + E_pos[0..L-1])       embeddings
    a_l = LayerNorm(h_l + MultiHead(h_l))                                         attention block
    h_{l+1} = LayerNorm(a_l + W_2 GELU(W_1 a_l + b_1) + b_2)                      feed-forward block
    pooled = tanh(W_p h_N[:, 0] + b_p)                                            pooler ([CLS])

Layers are numbered from 0, like ``model.layers[l]`` and the checkpoint's ``encoder.layer.{l}``:
layer ``l`` (0 .. N-1) turns ``h_l`` into ``h_{l+1}``, so ``hidden_states[l + 1]`` is the output
of layer ``l`` and ``attentions[l]`` its weights. BERT is "post-LN": the LayerNorm comes after
each residual sum. Shapes: ``B`` batch, ``L`` tokens, ``D = hidden_size``, ``H`` heads,
``I = intermediate_size`` (4 D in BERT).

The self-attention is ``course_lib.multihead.MultiHeadAttention`` (lesson 02): its
``q_proj/k_proj/v_proj`` are BERT's ``attention.self.query/key/value`` and its ``out_proj`` is
BERT's ``attention.output.dense``. ``load_pretrained_weights`` reads ``model.safetensors`` (no
pickle) and renames every tensor through ``hf_to_ours``, an explicit map from the names of
Hugging Face's ``modeling_bert.py``; a missing or unexpected tensor stops the load and is named.

Sentence embeddings (what ``all-MiniLM-L6-v2`` is trained for): mean of the last hidden states
over the real tokens (``mean_pooling``), then L2-normalised (``sentence_embeddings``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .artifacts import tiny_bert_settings
from .multihead import MultiHeadAttention
from .positional import cosine_similarity_matrix
from .runtime.exercises import Case, check_exercise

# ---------------------------------------------------------------- configuration


@dataclass
class BertConfig:
    """The hyper-parameters of a BERT encoder, with the field names of ``config.json``."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"

    def __post_init__(self):
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config {name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}; each head gets hidden_size / heads features"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act={self.hidden_act!r} is not supported; expected one of "
                f"{sorted(ACTIVATIONS)}"
            )
        if self.position_embedding_type != "absolute":
            raise ValueError(
                f"position_embedding_type={self.position_embedding_type!r} is not supported; "
                f"this BERT has learned absolute positions only"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        """Read ``config.json`` (or the folder holding it); keys this encoder does not use are
        ignored."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(f"no config.json at {path}; expected a BERT model folder")
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("model_type", "bert") != "bert":
            raise ValueError(
                f"{path} describes a {raw['model_type']!r} model; expected model_type 'bert'"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields})


ACTIVATIONS = {
    "gelu": F.gelu,  # exact: x * Phi(x), with erf
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}

# ---------------------------------------------------------------- the modules


class BertEmbeddings(nn.Module):
    """``LayerNorm(E_word[ids] + E_type[token types] + E_pos[positions])``: ``(B, L)`` ids -> ``(B,
    L, D)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, L = input_ids.shape
        if L > self.position.num_embeddings:
            raise ValueError(
                f"input has {L} tokens; this model knows positions "
                f"0..{self.position.num_embeddings - 1} "
                f"only. Truncate (tokenizer(..., truncation=True, max_length="
                f"{self.position.num_embeddings}))"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        positions = torch.arange(L, device=input_ids.device)  # (L,), broadcast over batch
        # Summed in Hugging Face's order (word + type, then + position): float addition is not
        # associative, and the same order keeps the two implementations equal to the last bit.
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)
        return self.dropout(self.norm(x))


class BertLayer(nn.Module):
    """One post-LN encoder layer: attention block, then feed-forward block.

    Shapes: ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        D, D_ff = config.hidden_size, config.intermediate_size
        self.attention = MultiHeadAttention(
            D, config.num_attention_heads, bias=True, dropout=config.attention_probs_dropout_prob
        )
        self.attention_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(D, D_ff)  # W_1: D -> D_ff
        self.ffn_out = nn.Linear(D_ff, D)  # W_2: D_ff -> D
        self.ffn_norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``W_2 GELU(W_1 x + b_1) + b_2``, applied to each position on its own."""
        return self.ffn_out(self.activation(self.ffn_in(x)))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ):
        """``x`` ``(B, L, D)``; ``mask`` boolean, broadcastable to ``(B, H, L, L)``, True = may
        attend.

        Returns ``(x (B, L, D), weights (B, H, L, L) or None)``.
        """
        attended, weights = self.attention(x, attn_mask=mask, need_weights=need_weights)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.ffn_norm(x + self.dropout(self.feed_forward(x)))
        return x, weights


@dataclass
class BertOutput:
    """What ``BertModel`` returns. ``hidden_states`` has ``num_hidden_layers + 1`` entries
    (embeddings first), each ``(B, L, D)``; ``attentions`` one ``(B, H, L, L)`` per layer."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def attention_mask_from_padding(attention_mask: torch.Tensor) -> torch.Tensor:
    """Tokenizer's ``(B, L)`` 0/1 mask -> boolean ``(B, 1, 1, L)``: every query may look at the
    real keys.

    The two singleton axes broadcast over heads and query positions. Padding rows still attend
    (to the real tokens), so no softmax row is empty.
    """
    if attention_mask.dim() != 2:
        raise ValueError(
            "attention_mask must be (B, L) with 1 = real token, got shape "
            f"{tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]


class BertModel(nn.Module):
    """The BERT encoder: embeddings, ``num_hidden_layers`` ``BertLayer``s, and the ``[CLS]`` pooler.

    ``model(input_ids (B, L), attention_mask (B, L), token_type_ids (B, L))`` -> ``BertOutput``.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BertOutput:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = (
                tuple(input_ids.shape)
                if isinstance(input_ids, torch.Tensor)
                else type(input_ids).__name__
            )
            raise ValueError(f"input_ids must be a (B, L) tensor of token ids, got {shape}")
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and tuple(t.shape) != tuple(input_ids.shape):
                raise ValueError(
                    f"{name} has shape {tuple(t.shape)}, expected {tuple(input_ids.shape)} like "
                    "input_ids"
                )
        mask = None if attention_mask is None else attention_mask_from_padding(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, mask, need_weights=output_attentions)
            hidden_states.append(x)
            attentions.append(weights)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # the [CLS] position
        return BertOutput(
            x,
            pooled,
            tuple(hidden_states) if output_hidden_states else None,
            tuple(attentions) if output_attentions else None,
        )

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = "minilm", device=None) -> BertModel:
        """Build the model from ``config.json`` and load ``model.safetensors``; returned in eval
        mode.

        ``name``: anything ``course_lib.models.resolve_model`` accepts ("minilm", a folder, a Hub
        id).
        """
        from .models import resolve_model

        folder = resolve_model(name)
        model = cls(BertConfig.from_json(folder))
        load_pretrained_weights(model, folder / "model.safetensors")
        return model.to(device or "cpu").eval()


def parameter_count(config: BertConfig) -> int:
    """The number of trainable parameters of ``BertModel(config)``, from the sizes alone.

    With ``D = hidden_size``, ``D_ff = intermediate_size``, ``N = num_hidden_layers``:

    - embeddings: ``(vocab_size + max_position_embeddings + type_vocab_size) D`` for the three
      tables, ``2 D`` for their LayerNorm;
    - each layer: ``4 (D^2 + D)`` for the query/key/value/output projections (whatever the
      number of heads), ``(D D_ff + D_ff) + (D_ff D + D)`` for the feed-forward block, and
      ``2 * 2 D`` for its two LayerNorms;
    - the pooler: ``D^2 + D``.
    """
    D, D_ff = config.hidden_size, config.intermediate_size
    tables = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * D
    embeddings = tables + 2 * D
    layer = 4 * (D * D + D) + (D * D_ff + D_ff) + (D_ff * D + D) + 2 * (2 * D)
    pooler = D * D + D
    return embeddings + config.num_hidden_layers * layer + pooler


# ---------------------------------------------------------------- loading the pretrained weights

# Hugging Face name (modeling_bert.py) -> our name. "{i}" is the layer number.
HF_TO_OURS = {
    "embeddings.word_embeddings.weight": "embeddings.word.weight",
    "embeddings.position_embeddings.weight": "embeddings.position.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    "encoder.layer.{i}.attention.self.query.weight": "layers.{i}.attention.q_proj.weight",
    "encoder.layer.{i}.attention.self.query.bias": "layers.{i}.attention.q_proj.bias",
    "encoder.layer.{i}.attention.self.key.weight": "layers.{i}.attention.k_proj.weight",
    "encoder.layer.{i}.attention.self.key.bias": "layers.{i}.attention.k_proj.bias",
    "encoder.layer.{i}.attention.self.value.weight": "layers.{i}.attention.v_proj.weight",
    "encoder.layer.{i}.attention.self.value.bias": "layers.{i}.attention.v_proj.bias",
    "encoder.layer.{i}.attention.output.dense.weight": "layers.{i}.attention.out_proj.weight",
    "encoder.layer.{i}.attention.output.dense.bias": "layers.{i}.attention.out_proj.bias",
    "encoder.layer.{i}.attention.output.LayerNorm.weight": "layers.{i}.attention_norm.weight",
    "encoder.layer.{i}.attention.output.LayerNorm.bias": "layers.{i}.attention_norm.bias",
    "encoder.layer.{i}.intermediate.dense.weight": "layers.{i}.ffn_in.weight",
    "encoder.layer.{i}.intermediate.dense.bias": "layers.{i}.ffn_in.bias",
    "encoder.layer.{i}.output.dense.weight": "layers.{i}.ffn_out.weight",
    "encoder.layer.{i}.output.dense.bias": "layers.{i}.ffn_out.bias",
    "encoder.layer.{i}.output.LayerNorm.weight": "layers.{i}.ffn_norm.weight",
    "encoder.layer.{i}.output.LayerNorm.bias": "layers.{i}.ffn_norm.bias",
    "pooler.dense.weight": "pooler.weight",
    "pooler.dense.bias": "pooler.bias",
}
# Tensors some checkpoints carry that are not weights: the fixed position index 0..511.
HF_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
# Older TensorFlow-converted checkpoints call the LayerNorm parameters gamma and beta.
_OLD_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}


class WeightLoadingError(ValueError):
    """The checkpoint and the model do not have the same tensors (names or shapes)."""


def hf_to_ours(name: str) -> str | None:
    """Our parameter name for a Hugging Face BERT tensor name; None for a known non-weight buffer.

    A leading ``bert.`` (as saved by ``BertForSequenceClassification`` and friends) is dropped.
    Raises ``KeyError`` for a name outside the map.
    """
    plain = name[len("bert.") :] if name.startswith("bert.") else name
    for old, new in _OLD_NAMES.items():
        if plain.endswith(old):
            plain = plain[: -len(old)] + new
    if plain in HF_BUFFERS:
        return None
    match = re.match(r"encoder\.layer\.(\d+)\.(.*)", plain)
    if match:
        template = "encoder.layer.{i}." + match.group(2)
        if template in HF_TO_OURS:
            return HF_TO_OURS[template].replace("{i}", match.group(1))
    elif plain in HF_TO_OURS:
        return HF_TO_OURS[plain]
    raise KeyError(name)


def convert_hf_state_dict(
    tensors: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face BERT state dict to ours; fail loudly, naming every problem.

    Unexpected = a checkpoint tensor that maps to nothing in ``model``; missing = a parameter of
    ``model`` that no checkpoint tensor fills; mismatched = the same name with another shape.
    """
    ours = model.state_dict()
    converted, unexpected, mismatched = {}, [], []
    for name, tensor in tensors.items():
        try:
            target = hf_to_ours(name)
        except KeyError:
            unexpected.append(name)
            continue
        if target is None:
            continue
        if target not in ours:
            unexpected.append(name)
        elif tuple(ours[target].shape) != tuple(tensor.shape):
            mismatched.append(
                f"{name} {tuple(tensor.shape)} -> {target} {tuple(ours[target].shape)}"
            )
        else:
            converted[target] = tensor
    missing = sorted(set(ours) - set(converted))
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(
                f"unexpected in the checkpoint ({len(unexpected)}): {', '.join(sorted(unexpected))}"
            )
        if mismatched:
            parts.append(f"shape mismatch ({len(mismatched)}): {'; '.join(mismatched)}")
        raise WeightLoadingError(
            "cannot load these weights into BertModel: "
            + " | ".join(parts)
            + ". Is this a BERT checkpoint with the same config.json?"
        )
    return converted


def load_pretrained_weights(model: BertModel, path: str | os.PathLike) -> BertModel:
    """Fill ``model`` from a ``model.safetensors`` file (safetensors only: no pickle, no code
    runs)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise ValueError(
            f"expected an existing .safetensors file, got {path}. (pytorch_model.bin pickles "
            f"are refused on purpose: loading a pickle can run arbitrary code.)"
        )
    state = convert_hf_state_dict(load_file(str(path)), model)
    model.load_state_dict(state, strict=True)
    return model


# ---------------------------------------------------------------- sentence embeddings


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors of the real tokens: ``sum_t m_t h_t / sum_t m_t``.

    ``hidden`` ``(B, L, D)``, ``attention_mask`` ``(B, L)`` with 1 for real tokens -> ``(B, D)``.
    Padding must not count, or a short sentence padded in a batch would change its embedding.
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected hidden (B, L, D) and attention_mask (B, L), got {tuple(hidden.shape)} "
            f"and {tuple(attention_mask.shape)}"
        )
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@torch.no_grad()
def sentence_embeddings(
    model: BertModel,
    tokenizer,
    texts,
    batch_size: int = 32,
    normalize: bool = True,
    max_length: int = 256,
) -> torch.Tensor:
    """``(N, D)`` sentence vectors: tokenise, encode, mean-pool, and (by default) L2-normalise.

    ``max_length=256`` is the limit ``all-MiniLM-L6-v2`` was trained with
    (sentence_bert_config.json).
    """
    if isinstance(texts, str):
        texts = [texts]
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = model(**batch).last_hidden_state
        out.append(mean_pooling(hidden, batch["attention_mask"]))
    emb = torch.cat(out)
    return F.normalize(emb, p=2, dim=-1) if normalize else emb


# ---------------------------------------------------------------- exercise checker (lesson 04)


def check_mean_pooling(fn, verbose: bool = True):
    """Checker for the mean-pooling exercise: ``fn(hidden (B, L, D), attention_mask (B, L)) -> (B,
    D)``."""

    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(3, 5, 4, generator=g)
    padded = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    hint_pad = (
        "multiply by the mask before summing, and divide by the number of REAL tokens, not by L."
    )
    cases = [
        Case(
            "no padding",
            (hidden, torch.ones(3, 5, dtype=torch.long)),
            hint="average over the token axis (dim=1).",
        ),
        Case("a padded batch", (hidden, padded), hint=hint_pad),
        Case(
            "a padded batch, huge values in the padding",
            (hidden + 1e4 * (1 - padded)[..., None], padded),
            hint=hint_pad,
        ),
        Case(
            "one sequence, one token",
            (torch.randn(1, 1, 8, generator=g), torch.ones(1, 1, dtype=torch.long)),
        ),
    ]
    return check_exercise("mean pooling", fn, mean_pooling, cases, verbose=verbose).function


def check_parameter_count(fn, verbose: bool = True):
    """Checker for the counting exercise: ``fn(config: BertConfig) -> int``, the number of
    parameters of ``BertModel(config)``. Compared with ``parameter_count`` on small configs that
    change one size at a time, then on MiniLM's and bert-base's sizes."""

    tiny = tiny_bert_settings(
        vocab_size=100, hidden_size=8, intermediate_size=16, max_position_embeddings=10
    )
    minilm = dict(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    cases = [
        Case(
            "a tiny BERT: 1 layer, D = 8",
            (BertConfig(**tiny),),
            hint="count every table, weight matrix and bias of the embeddings, the layer and "
            "the pooler; a LayerNorm has a weight and a bias of D numbers each.",
        ),
        Case(
            "the same with 3 layers",
            (BertConfig(**{**tiny, "num_hidden_layers": 3}),),
            hint="the embeddings and the pooler exist once; what grows with the number of layers?",
        ),
        Case(
            "the same with 4 heads instead of 2",
            (BertConfig(**{**tiny, "num_attention_heads": 4}),),
            hint="splitting D into more heads changes no matrix size (lesson 02).",
        ),
        Case(
            "longer tables: vocabulary 300, 40 positions, 3 token types",
            (
                BertConfig(
                    **{
                        **tiny,
                        "vocab_size": 300,
                        "max_position_embeddings": 40,
                        "type_vocab_size": 3,
                    }
                ),
            ),
            hint="each embedding table holds one vector of D numbers per entry.",
        ),
        Case(
            "a wider feed-forward block: intermediate_size 40",
            (BertConfig(**{**tiny, "intermediate_size": 40}),),
            hint="the feed-forward block widens to intermediate_size and narrows back again.",
        ),
        Case("MiniLM's sizes (config.json above)", (BertConfig(**minilm),)),
        Case(
            "bert-base-uncased's sizes: D = 768, 12 layers, I = 3072",
            (BertConfig(),),
        ),
    ]
    return check_exercise(
        "BERT parameter count", fn, parameter_count, cases, verbose=verbose
    ).function


__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertLayer",
    "BertModel",
    "BertOutput",
    "HF_TO_OURS",
    "WeightLoadingError",
    "attention_mask_from_padding",
    "check_mean_pooling",
    "check_parameter_count",
    "convert_hf_state_dict",
    "cosine_similarity_matrix",
    "hf_to_ours",
    "load_pretrained_weights",
    "mean_pooling",
    "parameter_count",
    "sentence_embeddings",
]
