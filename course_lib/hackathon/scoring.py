"""The scoring rule, and scoring every team of a hackathon.

The rule
--------
- **Quality**: macro-F1 over the challenge set (``course_lib.metrics.macro_f1``, over
  negative / neutral / positive): the mean of the three per-class F1 scores, so the rare
  class counts as much as the common one. A tweet with no usable answer counts as wrong.
- **Served model** (``--service NAME=URL``): the same macro-F1 on the service's answers, plus
  a latency bonus from the p95 of its request times (one tweet per request, see
  ``services.py``), when it answered every tweet:

  ======================  =======
  p95 latency             bonus
  ======================  =======
  <= ``FAST_P95_MS`` 15   +0.04
  <= ``OK_P95_MS`` 100    +0.02
  slower                  0
  ======================  =======

  A served model is what lesson 07 builds; getting under 15 ms is what lesson 06 is for. Lesson
  06 measured, per tweet inside the process (p95, 2 cores): PyTorch fp32 18 ms, PyTorch int8
  8 ms, ONNX Runtime fp32 12 ms, ONNX Runtime int8 6 ms. The HTTP round trip adds a few ms on
  one machine, more over Wi-Fi: score every team over the same network, and move both limits
  (``--fast-ms``, ``--ok-ms``) for a slow one. The bonus is small next to the F1 gap between
  the TF-IDF starter and a fine-tuned model, so it decides between models of similar quality.
- **A team's score** is the better of its file score and its service score.
- Ties (within 0.005) share a rank: on ~400 tweets such differences are noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import metrics
from ..data import LABELS
from .challenge import Challenge
from .services import query_service
from .submissions import NO_ANSWER, read_submission

FAST_P95_MS = 15.0
OK_P95_MS = 100.0
FAST_BONUS = 0.04
OK_BONUS = 0.02
TIE = 0.005


def macro_f1(truth: list[str], predicted: dict[str, str], ids: list[str]) -> float:
    """Macro-F1 of ``predicted`` {id: label} against ``truth`` (in the order of ``ids``);
    a missing id counts as ``NO_ANSWER``, wrong for every class."""
    index = {label: k for k, label in enumerate(LABELS)}
    guesses = [index.get(predicted.get(i, NO_ANSWER), -1) for i in ids]  # -1: matches no class
    return metrics.macro_f1([index[t] for t in truth], guesses, num_classes=len(LABELS))


def latency_bonus(p95_ms: float | None, fast_ms: float = FAST_P95_MS, ok_ms: float = OK_P95_MS):
    """The bonus of the table above (0 when no p95 could be measured)."""
    if p95_ms is None or math.isnan(p95_ms):
        return 0.0
    if p95_ms <= fast_ms:
        return FAST_BONUS
    return OK_BONUS if p95_ms <= ok_ms else 0.0


@dataclass
class Entry:
    """One scored thing: a team's file or its service."""

    kind: str  # "file" | "service"
    macro_f1: float | None  # None when rejected
    answered: int
    problems: list[str]
    p95_ms: float | None = None
    bonus: float = 0.0

    @property
    def score(self) -> float | None:
        return None if self.macro_f1 is None else self.macro_f1 + self.bonus


@dataclass
class TeamRow:
    team: str
    entries: list[Entry] = field(default_factory=list)
    rank: int | None = None

    @property
    def best(self) -> Entry | None:
        scored = [e for e in self.entries if e.score is not None]
        return max(scored, key=lambda e: e.score) if scored else None

    @property
    def score(self) -> float | None:
        return self.best.score if self.best else None

    def entry(self, kind: str) -> Entry | None:
        return next((e for e in self.entries if e.kind == kind), None)


@dataclass
class Leaderboard:
    rows: list[TeamRow]
    challenge_size: int
    source: str
    notes: list[str] = field(default_factory=list)
    fast_ms: float = FAST_P95_MS
    ok_ms: float = OK_P95_MS


def score_file(path: Path, challenge: Challenge) -> Entry:
    sub = read_submission(path, set(challenge.ids))
    if sub.rejected:
        return Entry("file", None, 0, sub.problems)
    answered = sum(v != NO_ANSWER for v in sub.predictions.values())
    return Entry(
        "file", macro_f1(challenge.labels, sub.predictions, challenge.ids), answered, sub.problems
    )


def score_service(
    team: str,
    url: str,
    challenge: Challenge,
    fast_ms: float = FAST_P95_MS,
    ok_ms: float = OK_P95_MS,
    **limits,
) -> Entry:
    if challenge.texts is None:
        return Entry("service", None, 0, [f"{challenge.source} has no texts to send"])
    result = query_service(team, url, challenge.ids, challenge.texts, **limits)
    if result.rejected:
        return Entry("service", None, 0, result.problems or ["no answer at all"])
    answered = sum(v != NO_ANSWER for v in result.predictions.values())
    p95 = result.p95_ms
    bonus = latency_bonus(p95, fast_ms, ok_ms) if answered == len(challenge.ids) else 0.0
    if answered < len(challenge.ids):
        result.problems.append("no latency bonus: not every tweet was answered")
    f1 = macro_f1(challenge.labels, result.predictions, challenge.ids)
    return Entry("service", f1, answered, result.problems, p95, bonus)


def rank(rows: list[TeamRow]) -> list[TeamRow]:
    """Sort by score (rejected last); teams within ``TIE`` of the one above share its rank."""
    rows = sorted(rows, key=lambda r: (r.score is None, -(r.score or 0), r.team.lower()))
    previous = None
    for i, row in enumerate(rows):
        if row.score is None:
            row.rank = None
        elif previous is not None and previous.score - row.score <= TIE:
            row.rank = previous.rank
        else:
            row.rank = i + 1
        previous = row if row.score is not None else previous
    return rows


def score_all(
    submissions_dir: str | Path | None,
    challenge: Challenge,
    services: dict[str, str] | None = None,
    tokens: dict[str, str] | None = None,
    fast_ms: float = FAST_P95_MS,
    ok_ms: float = OK_P95_MS,
    **limits,
) -> Leaderboard:
    """Score every ``*.csv`` in ``submissions_dir`` (team = file name without ``.csv``) and every
    service ``{team: url}`` (with its bearer token from ``tokens``, if any). One broken entry
    never stops the others."""
    teams: dict[str, TeamRow] = {}
    notes = []
    if submissions_dir is not None:
        folder = Path(submissions_dir)
        if not folder.is_dir():
            notes.append(f"{folder} is not a folder: no submission files scored")
        else:
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix.lower() == ".csv" and path.stem:
                    teams.setdefault(path.stem, TeamRow(path.stem)).entries.append(
                        score_file(path, challenge)
                    )
                elif not path.name.startswith("."):
                    notes.append(f"ignored {path.name!r}: a submission is a file ending in .csv")
    for team, url in (services or {}).items():
        teams.setdefault(team, TeamRow(team)).entries.append(
            score_service(
                team, url, challenge, fast_ms, ok_ms, token=(tokens or {}).get(team), **limits
            )
        )
    rows = rank(list(teams.values()))
    return Leaderboard(rows, len(challenge.ids), challenge.source, notes, fast_ms, ok_ms)
