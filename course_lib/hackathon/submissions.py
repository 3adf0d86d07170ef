"""Reading one team's submission file: ``id,label`` per line, checked, never a crash.

A submission is a UTF-8 CSV whose first line is the header ``id,label`` (more columns are
allowed and ignored), then one line per challenge tweet. What the checker does with each kind
of mistake (every problem becomes a message for that team):

===============================  ==============================================================
problem                          what happens
===============================  ==============================================================
file over ``MAX_BYTES``          rejected (not read past the limit)
empty file                       rejected
binary (NUL bytes)               rejected
not UTF-8                        rejected, with the byte position
no ``id``/``label`` header       scored if the first line is already an answer (warning),
                                 else rejected
BOM, CRLF line ends              accepted as they are
unknown id                       ignored (warning, with examples)
duplicate id                     first row counts (warning)
unknown label                    that tweet counts as wrong (warning)
missing ids                      each counts as wrong (warning)
===============================  ==============================================================

Labels are compared case-insensitively, with spaces around them ignored.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..data import LABELS

MAX_BYTES = 1 << 20  # 1 MiB: the challenge as id,label is ~10 KB
NO_ANSWER = "(no answer)"  # stands for a missing or unusable prediction: wrong for every class
EXAMPLES = 3  # how many offending values a message quotes


@dataclass
class Submission:
    """What one team's file said: ``predictions`` {id: label}, and ``problems`` in words.
    ``rejected`` means nothing could be scored."""

    team: str
    predictions: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rejected: bool = False


def _quote(values) -> str:
    values = list(values)
    shown = ", ".join(repr(v[:40]) for v in values[:EXAMPLES])
    return shown + (f" and {len(values) - EXAMPLES} more" if len(values) > EXAMPLES else "")


def decode_submission(raw: bytes) -> tuple[str | None, list[str]]:
    """``(text, problems)``; ``text`` is None when the bytes are not a usable text file."""
    if not raw.strip():
        return None, ["the file is empty: expected a header line id,label and one line per tweet"]
    if b"\x00" in raw:
        return None, ["the file is not text (it contains NUL bytes): save it as a CSV file"]
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM (Excel's "CSV UTF-8") is fine
    except UnicodeDecodeError as err:
        return None, [
            f"the file is not UTF-8 (byte {err.start} is 0x{raw[err.start]:02x}): save it "
            f"as UTF-8, e.g. pandas' to_csv(..., encoding='utf-8')"
        ]
    return text, []


def parse_submission(team: str, text: str, known_ids: set[str]) -> Submission:
    """Check the rows of a decoded submission against the challenge ids."""
    sub = Submission(team)
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if not rows:
        sub.rejected = True
        sub.problems.append("the file has no lines with content")
        return sub
    header = [c.strip().lower() for c in rows[0]]
    if "id" in header and "label" in header:
        id_col, label_col = header.index("id"), header.index("label")
        body = rows[1:]
    elif rows[0] and rows[0][0].strip() in known_ids and len(rows[0]) >= 2:
        sub.problems.append(
            "no header line: the first line must be id,label; read the file as id,label anyway"
        )
        id_col, label_col, body = 0, 1, rows
    else:
        sub.rejected = True
        first = ",".join(rows[0])
        hint = " (separated by ';': use commas)" if ";" in first and len(rows[0]) == 1 else ""
        sub.problems.append(
            f"the first line must be the header id,label; it is {first[:60]!r}{hint}"
        )
        return sub
    unknown_ids, duplicates, bad_labels, short = [], [], [], 0
    for row in body:
        if len(row) <= max(id_col, label_col):
            short += 1
            continue
        rid, label = row[id_col].strip(), row[label_col].strip().lower()
        if rid not in known_ids:
            unknown_ids.append(rid)
        elif rid in sub.predictions:
            duplicates.append(rid)
        elif label not in LABELS:
            bad_labels.append(label)
            sub.predictions[rid] = NO_ANSWER
        else:
            sub.predictions[rid] = label
    if short:
        sub.problems.append(f"{short} lines have fewer columns than the header: ignored")
    if unknown_ids:
        sub.problems.append(
            f"{len(unknown_ids)} ids are not in the challenge set (ignored): {_quote(unknown_ids)}"
        )
    if duplicates:
        sub.problems.append(
            f"{len(duplicates)} ids occur more than once (the first line counts): "
            f"{_quote(duplicates)}"
        )
    if bad_labels:
        sub.problems.append(
            f"{len(bad_labels)} labels are not one of {', '.join(LABELS)} (counted as wrong): "
            f"{_quote(sorted(set(bad_labels)))}"
        )
    missing = len(known_ids) - len(sub.predictions)
    if missing:
        sub.problems.append(
            f"{missing} of the {len(known_ids)} challenge ids have no line (counted as wrong)"
        )
    if not any(v != NO_ANSWER for v in sub.predictions.values()):
        sub.rejected = True
        sub.problems.append("no usable answer in the file: nothing to score")
    return sub


def too_large(team: str, size: int, max_bytes: int = MAX_BYTES) -> Submission:
    """The answer to a file over the size limit (it is not read further)."""
    message = (
        f"the file is {size:,} bytes, over the limit of {max_bytes:,}: "
        f"one line per challenge tweet is all that is needed"
    )
    return Submission(team, problems=[message], rejected=True)


def check_submission(
    team: str, raw: bytes, known_ids: set[str], max_bytes: int = MAX_BYTES
) -> Submission:
    """Check the bytes of one team's CSV (an upload, or a file's content). Never raises for a
    bad file: problems go into the result."""
    if len(raw) > max_bytes:
        return too_large(team, len(raw), max_bytes)
    text, problems = decode_submission(raw)
    if text is None:
        return Submission(team, problems=problems, rejected=True)
    return parse_submission(team, text, known_ids)


def read_submission(
    path: str | Path, known_ids: set[str], max_bytes: int = MAX_BYTES
) -> Submission:
    """Read and check one team's CSV (the team is the file name without ``.csv``)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)  # never more than the limit, however large the file
        size = max(len(raw), path.stat().st_size)
    except OSError as err:
        return Submission(
            path.stem, problems=[f"cannot read the file: {err.strerror}"], rejected=True
        )
    if size > max_bytes:
        return too_large(path.stem, size, max_bytes)
    return check_submission(path.stem, raw, known_ids, max_bytes)


def write_submission(path: str | Path, ids: list[str], labels: list[str]) -> Path:
    """Write ``id,label`` lines in the submission format (UTF-8, header first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows(zip(ids, labels))
    return path
