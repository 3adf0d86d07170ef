"""Test fixtures shared by several test modules (kept here, not in the library)."""

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
    """Save a small, randomly initialised BERT classifier with the MiniLM tokenizer to ``folder``.

    Same format as the fine-tuned model (``save_pretrained`` + tokenizer + ``id2label``), built
    in about a second. Its predictions are meaningless; tests use it for everything but accuracy.
    """
    from course_lib.artifacts import save_tiny_bert

    extra = {"num_labels": len(labels), "id2label": dict(enumerate(labels))}
    extra["label2id"] = {name: i for i, name in enumerate(labels)}
    size = {"hidden_size": hidden_size, "intermediate_size": 2 * hidden_size}
    return save_tiny_bert(
        folder, seed, num_hidden_layers=num_layers, max_position_embeddings=512, **size, **extra
    )


def tiny_served_model(root: Path) -> Path:
    """A tiny classifier in ``root/tiny-model`` with its ONNX export cached in ``root/artifacts``.

    Sets ``COURSE_ARTIFACTS`` (inherited by server subprocesses, which then find the export);
    the caller restores it (see ``artifacts_env``).
    """
    from course_lib import inference

    os.environ["COURSE_ARTIFACTS"] = str(root / "artifacts")
    folder = tiny_classifier(root / "tiny-model")
    inference.onnx_files(folder)  # export once, here
    return folder


class artifacts_env:
    """Context manager: put ``COURSE_ARTIFACTS`` back as it was on exit."""

    def __enter__(self):
        self.saved = os.environ.get("COURSE_ARTIFACTS")
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("COURSE_ARTIFACTS", None)
        else:
            os.environ["COURSE_ARTIFACTS"] = self.saved
