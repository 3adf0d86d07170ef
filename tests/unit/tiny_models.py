"""A small random BERT classifier in the fine-tuned model's format, built in about a second.

For tests of the tools that read model folders (optimisation, serving) without training first.
Its predictions are meaningless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def tiny_classifier(
    folder: str | os.PathLike,
    labels: Sequence[str] = ("negative", "neutral", "positive"),
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
) -> Path:
    """Save a randomly initialised BERT classifier with the MiniLM tokenizer to ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from course_lib.models import packaged_model_dir

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir())
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
