"""The course's decoder (``course_lib.gpt.GPT``) as a Hugging Face Llama: the configuration, the
name map of the weights, copies both ways, and saving in Hugging Face's format (so that
``transformers.pipeline("text-generation", model=folder)`` runs it)."""

from __future__ import annotations

import json

from .artifacts import SUMMARY_FILE, atomic_folder
from .gpt import GPT, GPTConfig


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
    atomically (``artifacts.atomic_folder``), so ``transformers.pipeline("text-generation",
    model=folder)`` runs it."""
    with atomic_folder(folder) as tmp:
        hf = to_hf(model)
        hf.generation_config.pad_token_id = model.config.pad_token_id
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if summary is not None:
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return folder


def load_pretrained(folder):
    """``(GPT, tokenizer)`` from a folder written by ``save_pretrained`` (or any tied Llama)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(folder)
    return from_hf(hf), AutoTokenizer.from_pretrained(folder)
