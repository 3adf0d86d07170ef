"""``setup()``: the one call at the top of every notebook."""

from __future__ import annotations

import logging
import os
import random
import warnings

from ..settings import profile_line
from .offline import install_guard_if_requested

DEFAULT_SEED = 0


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when set, else all cores but at most 4 (more threads than that slow
    small CPU models down). Set it when several processes share the cores: ``make test`` gives
    each of its workers its share, because two processes with a thread per core each spend more
    time waiting for each other than computing."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(4, os.cpu_count() or 1))


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def quiet_libraries() -> None:
    """Silence the chatter of transformers, tokenizers and friends."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in (
        "transformers",
        "sentence_transformers",
        "huggingface_hub",
        "urllib3",
        "torch.onnx",
        "onnxscript",
        "httpx",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def set_offline() -> None:
    """Tell Hugging Face libraries never to reach for the Hub."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def set_plot_style() -> None:
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "image.cmap": "viridis",
            "savefig.bbox": "tight",
        }
    )


def pick_device():
    """CUDA when present, else CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup(seed: int = DEFAULT_SEED, threads: int | None = None, verbose: bool = True):
    """Seed, set threads, go offline, quiet logging, set plot defaults; return the device.

    Call it once at the top of every notebook. Returns ``torch.device('cuda')`` when a GPU is
    present, else ``torch.device('cpu')``.
    """
    install_guard_if_requested()
    set_offline()
    quiet_libraries()
    import torch

    threads = threads or default_threads()
    torch.set_num_threads(threads)
    seed_everything(seed)
    set_plot_style()
    device = pick_device()
    if verbose:
        print(
            f"course_lib ready: seed {seed}, {threads} thread{'s' if threads > 1 else ''}, "
            f"device {device.type}"
        )
        print(profile_line())
    return device
