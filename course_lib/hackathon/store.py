"""Every submission kept on disk, append-only and crash-safe.

The folder (the server's ``--data DIR``) holds:

- ``files/NNNNNN.csv``: each submission's bytes as received (a service's answers as
  ``id,label``), named by its number, never by anything a team chose;
- ``log.jsonl``: one JSON object per line, appended and never rewritten: ``"submission"``
  records (time, team, kind, score, messages), ``"choice"`` (a team picks the submission that
  counts) and ``"reveal"`` (the final ranking was shown).

Crash safety, in the order things happen: a file is written under a temporary name, flushed to
disk (``fsync``) and renamed to its number; only then is its log line appended, in one
``write`` followed by ``fsync``; only then does the team get its answer. A crash at any point
therefore leaves either a complete, logged submission or one the team was never told about. On
start, the store deletes temporary files, cuts a last log line that was torn in the middle of
its ``write`` (it was never acknowledged), and ignores a numbered file that no log line names.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOG_NAME = "log.jsonl"
FILES_DIR = "files"
TMP_SUFFIX = ".tmp"


@dataclass
class Record:
    """One kept submission. ``public``/``private``: macro-F1 on each split (None: rejected);
    ``agreement``: the share of the whole challenge answered like the corpus labels (for the
    lookup flag; None when the answers are not the course's)."""

    id: int
    team: str
    time: float  # seconds since the epoch
    kind: str  # "file" | "service"
    name: str  # the uploaded file's name, or the service's URL (display only)
    sha256: str
    rejected: bool
    problems: list[str] = field(default_factory=list)
    public: float | None = None
    private: float | None = None
    bonus: float = 0.0
    p95_ms: float | None = None
    agreement: float | None = None
    flagged: bool = False


class StoreError(RuntimeError):
    """The data folder cannot be used (with what to do about it in the message)."""


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync there; NTFS logs renames
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so that a crash leaves the old file or the new one, whole:
    a temporary file, ``fsync``, rename, ``fsync`` of the folder."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_log(path: Path) -> tuple[list[dict], int]:
    """``(events, good_bytes)``: the complete lines of the log, and how many bytes they span
    (a torn last line, without its newline or not JSON, is left out)."""
    raw = path.read_bytes() if path.exists() else b""
    events, good = [], 0
    for line in raw.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            events.append(json.loads(line))
        except ValueError:
            if good + len(line) == len(raw):  # torn in the middle of its write, then a newline
                break
            raise StoreError(
                f"{path}: line {len(events) + 1} is not JSON, and lines follow it. The log is "
                f"only ever appended to: restore it from a copy, or start on a new --data folder."
            ) from None
        good += len(line)
    return events, good


class SubmissionStore:
    """The append-only store in ``folder``; safe to use from several threads."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.files = self.folder / FILES_DIR
        self.files.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / LOG_NAME
        self._lock = threading.Lock()
        self.recovered: list[str] = []  # what start-up cleaned, in words
        for tmp in self.files.glob("*" + TMP_SUFFIX):
            tmp.unlink()
            self.recovered.append(f"deleted the unfinished file {tmp.name}")
        events, good = read_log(self.log_path)
        if self.log_path.exists() and good < self.log_path.stat().st_size:
            with self.log_path.open("r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
            self.recovered.append("cut a log line torn by a crash (it was never acknowledged)")
        self.records: list[Record] = []
        self.choices: dict[str, int] = {}
        self.revealed = False
        for event in events:
            self._apply(event)
        logged = {self.file_of(r.id).name for r in self.records}
        for orphan in sorted(p.name for p in self.files.glob("*.csv") if p.name not in logged):
            self.recovered.append(f"ignored {orphan}: written, but never logged (a crash)")
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _apply(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "submission":
            self.records.append(Record(**event["record"]))
        elif kind == "choice":
            self.choices[event["team"]] = event["submission"]
        elif kind == "reveal":
            self.revealed = True

    def _append(self, event: dict) -> None:
        line = (json.dumps(event, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)  # O_APPEND: one write, at the end, even with other writers
        os.fsync(self._fd)
        self._apply(event)

    def file_of(self, submission_id: int) -> Path:
        return self.files / f"{submission_id:06d}.csv"

    def add(self, content: bytes, record: Record) -> Record:
        """Keep a new submission (``record`` scored already; its ``id`` is set here): the file,
        then its log line, are on disk before this returns."""
        with self._lock:
            record.id = max((r.id for r in self.records), default=0) + 1
            write_durably(self.file_of(record.id), content)
            self._append({"event": "submission", "record": asdict(record)})
            return record

    def choose(self, team: str, submission_id: int) -> None:
        with self._lock:
            self._append(
                {"event": "choice", "team": team, "submission": submission_id, "time": time.time()}
            )

    def reveal(self) -> None:
        with self._lock:
            if not self.revealed:
                self._append({"event": "reveal", "time": time.time()})

    def content(self, submission_id: int) -> bytes:
        return self.file_of(submission_id).read_bytes()

    def of_team(self, team: str) -> list[Record]:
        return [r for r in list(self.records) if r.team == team]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
