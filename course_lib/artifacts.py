"""Model folders: where they live, saving, loading, and checking that a folder is complete.

A fine-tuned classifier is a Hugging Face folder (``save_pretrained``: ``config.json`` with the
label names, ``model.safetensors``, the tokenizer files) plus ``training_summary.json``, what
lesson 05's run recorded about itself. Lessons 06, 07 and 10 read such folders.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike, replace: bool = True):
    """Write a folder in one piece: yields a new temporary folder beside ``folder``; when the
    block ends without error it becomes ``folder``, so a reader never sees half of it; on error
    it is removed and ``folder`` is left as it was.

    ``replace=False``: when ``folder`` exists by then (another process finished first), keep
    that one and drop ours.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a saved model is readable like any folder
    try:
        yield tmp
        if folder.exists() and not replace:
            shutil.rmtree(tmp)
            return
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def folder_lock(folder: str | os.PathLike):
    """A lock file beside ``folder`` (``with folder_lock(folder): ...``): of the processes that
    would write the same model at once, one trains and saves while the others wait, then find
    it and reuse it."""
    from filelock import FileLock

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder.parent / f".{folder.name}.lock"))


def save_classifier(model, tokenizer, folder: str | os.PathLike, summary: dict | None = None):
    """Write ``model`` + ``tokenizer`` with ``save_pretrained`` (safetensors) to ``folder``,
    atomically (``atomic_folder``).

    The label names travel in ``config.json`` (``id2label`` / ``label2id``), so
    ``transformers.pipeline("text-classification", model=folder)`` prints "positive", not
    "LABEL_2".
    """
    model.config.id2label = dict(ID2LABEL)
    model.config.label2id = dict(LABEL2ID)
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if summary is not None:
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return Path(folder)


def tiny_bert_settings(**overrides) -> dict:
    """The settings of a tiny BERT (1 layer, hidden size 16, 2 heads, vocabulary 64, dropout
    off), with any of them overridden: a model built in milliseconds, for exact and fast checks.
    The keys are those of ``config.json`` (Hugging Face's ``BertConfig`` and
    ``course_lib.bert.BertConfig`` both take them)."""
    return {
        "vocab_size": 64,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 32,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        **overrides,
    }


def tiny_bert_classifier(seed: int = 0, **overrides):
    """A randomly initialised ``BertForSequenceClassification`` with ``tiny_bert_settings`` (the
    course's three labels; ``overrides`` change any setting), the same for the same ``seed``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    settings = tiny_bert_settings(
        classifier_dropout=0.0, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**{**settings, **overrides}))


def save_tiny_bert(folder: str | os.PathLike, seed: int = 0, replace: bool = True, **overrides):
    """``tiny_bert_classifier`` with MiniLM's tokenizer (and its vocabulary size), saved to
    ``folder`` like a pretrained model, atomically: a stand-in for the real model wherever
    accuracy does not matter (tests, lesson 08's exact comparisons)."""
    from transformers import AutoTokenizer

    from .models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    model = tiny_bert_classifier(seed, vocab_size=len(tokenizer), **overrides)
    with atomic_folder(folder, replace=replace) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return Path(folder)


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
    ``course_lib.finetuned.train_and_save``); ``course_lib.settings.MAX_TOKENS`` when the folder has
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
