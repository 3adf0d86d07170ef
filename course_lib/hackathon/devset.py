"""The dev set: labelled tweets drawn like the challenge, for the teams.

Lesson 05's validation split is the wrong place to check a hackathon model: its tweets are the
ones annotators agreed on (confidence >= 0.6), about 50 / 37 / 13 % negative / neutral /
positive, while the challenge's are low-agreement tweets, about 13 / 62 / 24 %. The dev set is
``DEV_SIZE`` tweets of the challenge's own band (``challenge.py``), drawn stratified by label
with a fixed seed, so it has the challenge's label shares. It is disjoint from the challenge
and from all of lesson 05's splits (the band holds no text near any of them), recorded in
``data/dev.json`` like the other splits, and handed to teams with its labels. Lesson 10 also
uses it as the practice set: the scorer and the submission server are shown on it, never on
the challenge's answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import data
from ..settings import DATA_DIR
from .challenge import (
    DEV_SEED,
    Challenge,
    load_record,
    split_band,
    write_answers,
    write_record,
)

DEV_FILE = DATA_DIR / "dev.json"
DEV_PREFIX = "d"


def write_dev_record(path: str | Path = DEV_FILE) -> dict:
    """Draw the dev set from the installed corpus and record it (maintainers only)."""
    raw = data.read_raw_corpus()
    rows, _ = split_band(raw)
    counts = Counter(raw[r].sentiment for r in rows)
    return write_record(
        path,
        rows,
        DEV_PREFIX,
        "The hackathon's dev set (labelled, for the teams; drawn like the challenge)",
        dev_seed=DEV_SEED,
        label_counts={label: counts[label] for label in data.LABELS},
    )


def dev_set(path: str | Path = DEV_FILE) -> Challenge:
    """The dev set with its labels, rebuilt from the corpus and checked against the record."""
    record, raw, texts = load_record(path, "dev")
    labels = [raw[r].sentiment for r in record["rows"]]
    return Challenge(list(record["ids"]), labels, texts, source=f"dev set ({Path(path).name})")


def write_dev_csv(folder: str | Path, dev: Challenge | None = None) -> Path:
    """``folder/dev.csv`` with columns ``id,label,text``: what a team validates on."""
    return write_answers(Path(folder) / "dev.csv", dev or dev_set())
