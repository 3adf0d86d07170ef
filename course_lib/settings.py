"""One place for the course's settings: where things live, shared limits, environment flags.

Every other module reads these instead of keeping its own copy, so a change happens once.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DATA_DIR = REPO_ROOT / "data"
BUILD_DIR = REPO_ROOT / "build"
REQUIREMENTS = REPO_ROOT / "requirements.txt"

# Tokens per text for training, evaluation and serving. Tweets are short (the measured mean is
# in lesson 05), so truncation at 128 almost never bites. A model folder records the limit it was
# trained with (``max_length`` in training_summary.json); serving reads it from there.
MAX_TOKENS = 128

ARTIFACTS_ENV = "COURSE_ARTIFACTS"
# When on, a lesson that trains loads the model it saved earlier with the very same settings
# instead of training again (the browser tests set it; learners normally leave it off).
REUSE_MODELS_ENV = "COURSE_REUSE_MODELS"
_FALSE = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to anything but 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in _FALSE


def artifacts_dir() -> Path:
    """Where trained models and exported files go: ``$COURSE_ARTIFACTS`` if set, else
    ``artifacts/`` at the repository root (git-ignored). Created on first use."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or REPO_ROOT / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{package: version}`` for every ``name==version`` line of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def pinned(package: str) -> str:
    """``package==version`` as requirements.txt pins it (for messages that say how to fix)."""
    version = read_pins().get(package.lower())
    return f"{package}=={version}" if version else package
