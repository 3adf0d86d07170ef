"""Model folders: where they live, saving, loading, and checking that a folder is complete.

A fine-tuned classifier is a Hugging Face folder (``save_pretrained``: ``config.json`` with the
label names, ``model.safetensors``, the tokenizer files) plus ``training_summary.json``, what
lesson 05's run recorded about itself. Lessons 06, 07 and 10 read such folders.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .data import ID2LABEL, LABEL2ID
from .settings import MAX_TOKENS, artifacts_dir

DEFAULT_MODEL_NAME = "minilm-tweets"
FULL_MODEL_NAME = "minilm-tweets-full"
CUSTOM_MODEL_NAME = "minilm-tweets-custom"
SUMMARY_FILE = "training_summary.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


def model_folder(name: str = DEFAULT_MODEL_NAME) -> Path:
    """``artifacts/<name>`` (see ``course_lib.settings.artifacts_dir``)."""
    return artifacts_dir() / name


def is_complete_model_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a finished save: config, safetensors weights, tokenizer."""
    folder = Path(folder)
    return all((folder / f).is_file() for f in REQUIRED_FILES)


def checked_model_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a Path, or a ValueError saying what a model folder must contain."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(
            f"expected a folder written by save_pretrained() (with config.json); "
            f"got {str(folder)!r}"
        )
    return folder


def save_classifier(model, tokenizer, folder: str | os.PathLike, summary: dict | None = None):
    """Write ``model`` + ``tokenizer`` with ``save_pretrained`` (safetensors) to ``folder``,
    atomically.

    The label names travel in ``config.json`` (``id2label`` / ``label2id``), so
    ``transformers.pipeline("text-classification", model=folder)`` prints "positive", not
    "LABEL_2". Everything is written to a temporary sibling folder first and renamed at the end,
    so a crash never leaves a half-written model behind.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    model.config.id2label = dict(ID2LABEL)
    model.config.label2id = dict(LABEL2ID)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a saved model is readable like any folder
    try:
        model.save_pretrained(tmp, safe_serialization=True)
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


def load_classifier(folder: str | os.PathLike, device=None, attn_implementation: str | None = None):
    """``(model, tokenizer)`` from a ``save_pretrained`` folder, the model in eval mode.

    ``attn_implementation``: ``None`` for Hugging Face's default (``"sdpa"``, PyTorch's fused
    kernel), or ``"eager"`` for the formula written out (what the ONNX export uses).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = checked_model_folder(folder)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForSequenceClassification.from_pretrained(folder, **extra)
    if device is not None:
        model.to(device)
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def labels_of(folder: str | os.PathLike) -> list[str]:
    """Class names in index order, read from ``config.json``'s ``id2label``."""
    config = json.loads((checked_model_folder(folder) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    if not id2label:
        raise ValueError(f"{folder}/config.json has no id2label; expected one name per class")
    return [id2label[str(i)] for i in range(len(id2label))]


def read_training_summary(folder: str | os.PathLike) -> dict:
    """The ``training_summary.json`` saved next to a model (settings, timings, test metrics)."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected a model saved by lesson 05")
    return json.loads(path.read_text())


def trained_max_tokens(folder: str | os.PathLike) -> int:
    """The token limit a model was trained with, so that serving cuts texts where training did.

    Read from ``training_summary.json`` (``config.max_length``, written by
    ``course_lib.train.train_and_save``); ``course_lib.settings.MAX_TOKENS`` when the folder has
    no such record (a model trained elsewhere).
    """
    summary = Path(folder) / SUMMARY_FILE
    try:
        value = json.loads(summary.read_text())["config"]["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return MAX_TOKENS
    if not isinstance(value, int) or value < 2:
        raise ValueError(f"{summary}: config.max_length must be an integer >= 2, got {value!r}")
    return value
