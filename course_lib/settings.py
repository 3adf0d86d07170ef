"""One place for the course's settings: where things live, shared limits, environment flags.

Every other module reads these instead of keeping its own copy, so a change happens once.
"""

from __future__ import annotations

import os
from pathlib import Path

VERSION = "0.1.0"  # the course's version (course_lib.__version__, the service's /model)
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
# The run profile: ``full`` (the default: learners, the committed outputs, ``course_lib run``) or
# ``quick`` (the test suite, or a learner on a slow laptop told so by the instructor). It sets the
# length of every heavy loop (training steps, timing rounds, fuzzing examples) through
# ``by_profile``; notebooks never branch on it, they call the library, which honours it.
PROFILE_ENV = "COURSE_PROFILE"
PROFILES = ("full", "quick")
# ``COURSE_FULL=1``: lesson 05's longer FULL training setting (whole pool, up to 3 epochs).
FULL_TRAINING_ENV = "COURSE_FULL"
# When on, a lesson that trains loads the model it saved earlier with the very same settings
# instead of training again (the browser tests set it; learners normally leave it off).
REUSE_MODELS_ENV = "COURSE_REUSE_MODELS"
_FALSE = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to anything but 0/false/no/off/empty."""
    return os.environ.get(name, "").strip().lower() not in _FALSE


def profile() -> str:
    """The run profile, ``$COURSE_PROFILE``: ``"full"`` (default) or ``"quick"``."""
    value = os.environ.get(PROFILE_ENV, "").strip().lower() or "full"
    if value not in PROFILES:
        raise ValueError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a profile; expected one of "
            f"{', '.join(PROFILES)} (or unset, which means full)"
        )
    return value


def by_profile(full, quick):
    """``full`` under the full profile, ``quick`` under the quick one: the one switch every heavy
    loop of the course reads (``by_profile(full=200, quick=20)`` timing rounds, say)."""
    return quick if profile() == "quick" else full


def profile_line() -> str:
    """One line for the top of a notebook: which profile this run uses, and what that means."""
    if profile() == "quick":
        return (
            f"profile: quick (shorter training and fewer timing rounds; numbers differ from the "
            f"committed outputs; unset {PROFILE_ENV} for the full run)"
        )
    return "profile: full (the run the committed outputs and the prose show)"


def full_training_requested() -> bool:
    """True when ``COURSE_FULL`` is on: lesson 05 then trains with its FULL setting."""
    return env_flag(FULL_TRAINING_ENV)


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
