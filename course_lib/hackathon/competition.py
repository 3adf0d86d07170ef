"""The competition as the submission server runs it, without the HTTP: who may submit what,
how each submission is scored and kept, and the board.

- The answers (``load_answers``) come from the instructor's file; its tweets are split into a
  public part (the live board) and a private part (the final ranking), stratified and seeded
  (``split.public_private``).
- A file or a service run is checked by today's scorer (``submissions``, ``services``), scored
  on both parts, checked for looked-up labels (``fairplay``) and kept (``store``), rejected or
  not. Scored submissions count against the team's hourly limit.
- The board ranks each team's counted submission (``ranking``) on the public part, or on the
  private part once revealed (or for the instructor), with ties within the bootstrap noise.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .challenge import CHALLENGE_FILE, ChallengeError, course_challenge, read_answers
from .fairplay import DEFAULT_LIMIT_PER_HOUR, agreement, looks_up_labels, next_allowed
from .ranking import (
    Candidate,
    bootstrap_weights,
    counted_submission,
    label_indices,
    predictions_for,
    tied_ranks,
    weighted_macro_f1,
)
from .scoring import FAST_P95_MS, OK_P95_MS, latency_bonus, macro_f1
from .services import check_registered, query_service
from .split import PUBLIC_SHARE, public_private
from .store import Record, SubmissionStore
from .submissions import NO_ANSWER, check_submission
from .teams import Team

MAX_NAME_SHOWN = 100  # characters of an uploaded file's name that are kept


class Refused(Exception):
    """A request the competition refuses: HTTP ``status``, a short ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str, retry_at: float | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_at = status, code, message, retry_at


@dataclass
class Answers:
    """The instructor's answers, split. ``reference``: the corpus labels of these tweets when
    they are the course's challenge (for the lookup flag), else empty."""

    ids: list[str]
    labels: list[str]
    texts: list[str] | None
    public: list[str]
    private: list[str]
    reference: dict[str, str]
    sha256: str
    source: str


def recorded_challenge_ids() -> set[str]:
    try:
        return set(json.loads(CHALLENGE_FILE.read_text())["ids"])
    except (OSError, ValueError, KeyError):
        return set()


def load_answers(path: str | Path, share: float = PUBLIC_SHARE) -> Answers:
    """Read the answers file and split it; compare it with the course challenge's labels."""
    path = Path(path)
    answers = read_answers(path)
    public, private = public_private(answers.ids, answers.labels, share)
    reference = {}
    if set(answers.ids) <= recorded_challenge_ids():  # the course's tweets: compare with the corpus
        try:
            course = course_challenge()
            corpus = dict(zip(course.ids, course.labels))
            reference = {i: corpus[i] for i in answers.ids}
        except (ChallengeError, OSError, RuntimeError):  # no corpus on this machine
            pass
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Answers(
        answers.ids, answers.labels, answers.texts, public, private, reference, digest, path.name
    )


@dataclass
class Row:
    """One team on the board."""

    team: str
    rank: int | None = None
    submission: int | None = None
    kind: str | None = None
    score: float | None = None  # what ranks: the split's macro-F1 plus the latency bonus
    public: float | None = None
    private: float | None = None  # only on the final board
    bonus: float = 0.0
    p95_ms: float | None = None
    submissions: int = 0
    last: float | None = None
    flagged: bool = False  # only shown to the instructor


@dataclass
class Board:
    final: bool
    split: str  # "public" | "private"
    size: int  # tweets in that split
    rows: list[Row] = field(default_factory=list)


def _csv_of(predictions: dict[str, str]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "label"])
    writer.writerows(predictions.items())
    return out.getvalue().encode("utf-8")


def shown_name(name: str | None) -> str:
    """An uploaded file's name as kept: its last path part, printable characters, cut short."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())
    return base[:MAX_NAME_SHOWN] or "(no name)"


class Competition:
    """Teams, answers, the store and the rules; every method is safe to call from threads."""

    def __init__(
        self,
        answers: Answers,
        teams: list[Team],
        tokens: dict[str, str],
        admin_token: str,
        store: SubmissionStore,
        limit_per_hour: int = DEFAULT_LIMIT_PER_HOUR,
        fast_ms: float = FAST_P95_MS,
        ok_ms: float = OK_P95_MS,
        clock=time.time,
    ):
        self.answers, self.store, self.clock = answers, store, clock
        self.teams = {t.name: t for t in teams}
        self.tokens = {tokens[name]: name for name in self.teams}
        self.admin_token = admin_token
        self.limit, self.fast_ms, self.ok_ms = limit_per_hour, fast_ms, ok_ms
        self._rules = threading.Lock()  # the limit check and the write happen as one step
        self._services = threading.Lock()  # one service at a time: no run slows another's p95
        self._predictions: dict[int, np.ndarray] = {}
        self._weights: dict[int, np.ndarray] = {}
        self._index = {rid: k for k, rid in enumerate(answers.ids)}

    # ----------------------------------------------------------------------- who is asking
    def team_of(self, token: str | None) -> str | None:
        return self.tokens.get(token or "")

    def is_admin(self, token: str | None) -> bool:
        return bool(token) and token == self.admin_token

    # ----------------------------------------------------------------------- submitting
    def _scored(self, team, kind, name, predictions, problems, p95=None, complete=True) -> Record:
        a = self.answers
        public = macro_f1([a.labels[self._index[i]] for i in a.public], predictions, a.public)
        private = macro_f1([a.labels[self._index[i]] for i in a.private], predictions, a.private)
        share = agreement(predictions, a.reference)
        bonus = latency_bonus(p95, self.fast_ms, self.ok_ms) if kind == "service" else 0.0
        if kind == "service" and not complete:
            bonus = 0.0
            problems = problems + ["no latency bonus: not every tweet was answered"]
        return Record(
            id=0,
            team=team,
            time=self.clock(),
            kind=kind,
            name=name,
            sha256="",
            rejected=False,
            problems=problems,
            public=public,
            private=private,
            bonus=bonus,
            p95_ms=p95,
            agreement=share,
            flagged=looks_up_labels(share),
        )

    def _rejected(self, team: str, kind: str, name: str, problems: list[str]) -> Record:
        return Record(0, team, self.clock(), kind, name, "", True, problems)

    def _check_open(self, team: str, scored: bool = True) -> None:
        """Refuse when the final ranking is out, or (for a ``scored`` submission) when the team
        is at its hourly limit."""
        if self.store.revealed:
            raise Refused(409, "closed", "the final ranking is out: submissions are closed")
        if not scored:
            return
        times = [r.time for r in self.store.of_team(team) if not r.rejected]
        allowed = next_allowed(times, self.clock(), self.limit)
        if allowed is not None:
            when = time.strftime("%H:%M:%S", time.localtime(allowed))
            raise Refused(
                429,
                "limit_reached",
                f"{team} has made {self.limit} scored submissions in the last hour; the next "
                f"one is allowed at {when}",
                retry_at=allowed,
            )

    def submit_file(self, team: str, filename: str | None, content: bytes) -> Record:
        """Check, score and keep one uploaded CSV (kept even when rejected)."""
        sub = check_submission(team, content, set(self.answers.ids))
        with self._rules:
            self._check_open(team, scored=not sub.rejected)  # a rejected file costs nothing
            if sub.rejected:
                record = self._rejected(team, "file", "", sub.problems)
            else:
                record = self._scored(team, "file", "", sub.predictions, sub.problems)
            record.name, record.sha256 = shown_name(filename), hashlib.sha256(content).hexdigest()
            return self.store.add(content, record)

    def submit_service(self, team: str, url: str, token: str | None = None, **limits) -> Record:
        """Score the team's running service on every tweet (public and private, mixed, so it
        cannot tell them apart), with its p95 over those same requests; keep the result."""
        a = self.answers
        if a.texts is None:
            raise Refused(409, "no_texts", "the answers file has no text column: no service runs")
        try:
            url = check_registered(url, self.teams[team].host, team)
        except ValueError as err:
            raise Refused(403, "not_registered", str(err)) from None
        with self._rules:
            self._check_open(team)
        with self._services:
            result = query_service(team, url, a.ids, a.texts, token=token, **limits)
        with self._rules:
            self._check_open(team)  # another request of this team may have used the last slot
            if result.rejected:
                record = self._rejected(team, "service", url, result.problems)
            else:
                complete = all(v != NO_ANSWER for v in result.predictions.values())
                complete = complete and len(result.predictions) == len(a.ids)
                record = self._scored(
                    team,
                    "service",
                    url,
                    result.predictions,
                    result.problems,
                    result.p95_ms,
                    complete,
                )
            content = _csv_of(result.predictions)
            record.sha256 = hashlib.sha256(content).hexdigest()
            return self.store.add(content, record)

    def choose(self, team: str, submission_id: int) -> None:
        """The team's choice of the submission that counts."""
        own = {r.id: r for r in self.store.of_team(team)}
        if submission_id not in own:
            raise Refused(404, "unknown_submission", f"{team} has no submission {submission_id}")
        if own[submission_id].rejected:
            raise Refused(
                409, "rejected", f"submission {submission_id} was rejected: it cannot count"
            )
        self.store.choose(team, submission_id)

    def counted(self, team: str) -> int | None:
        """The id of the team's submission that counts (``ranking.counted_submission``)."""
        candidates = [
            Candidate(r.id, None if r.rejected else r.public + r.bonus, r.time)
            for r in self.store.of_team(team)
        ]
        return counted_submission(candidates, self.store.choices.get(team))

    # ----------------------------------------------------------------------- the board
    def _answers_of(self, record: Record) -> np.ndarray:
        if record.id not in self._predictions:
            sub = check_submission(
                record.team, self.store.content(record.id), set(self.answers.ids)
            )
            self._predictions[record.id] = predictions_for(sub.predictions, self.answers.ids)
        return self._predictions[record.id]

    def board(self, final: bool = False, admin: bool = False) -> Board:
        """Each team's counted submission, ranked on the public split, or on the private one
        (``final``). Flags are shown only to the instructor (``admin``)."""
        a = self.answers
        part = a.private if final else a.public
        positions = np.array([self._index[i] for i in part])
        truth = label_indices([a.labels[k] for k in positions])
        if len(part) not in self._weights:
            self._weights[len(part)] = bootstrap_weights(len(part))
        weights = self._weights[len(part)]
        records = {r.id: r for r in list(self.store.records)}
        rows, samples = [], {}
        for team in self.teams:
            own = self.store.of_team(team)
            row = Row(team, submissions=len(own), last=max((r.time for r in own), default=None))
            chosen = self.counted(team)
            if chosen is not None:
                r = records[chosen]
                row.submission, row.kind, row.bonus, row.p95_ms = r.id, r.kind, r.bonus, r.p95_ms
                row.public = r.public
                row.private = r.private if final else None
                row.score = (r.private if final else r.public) + r.bonus
                row.flagged = admin and r.flagged
                answered = self._answers_of(r)[positions]
                samples[team] = weighted_macro_f1(truth, answered, weights) + r.bonus
            rows.append(row)
        rows.sort(
            key=lambda w: (
                w.score is None,
                -(w.score or 0.0),
                records[w.submission].time if w.submission else 0.0,
                w.team.lower(),
            )
        )
        ranked = [w for w in rows if w.score is not None]
        for row, place in zip(ranked, tied_ranks([samples[w.team] for w in ranked])):
            row.rank = place
        return Board(final, "private" if final else "public", len(part), rows)

    def reveal(self) -> Board:
        self.store.reveal()
        return self.board(final=True)
