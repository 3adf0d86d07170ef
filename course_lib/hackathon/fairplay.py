"""The rules that keep the board honest: a submission limit, and a flag for looked-up labels.

**The limit.** At most ``limit`` scored submissions per team in any hour (a sliding window: the
next one is allowed an hour after the oldest of the last ``limit``). A file the checker rejects
costs nothing, since it tells the team nothing about the answers. The limit is what makes
probing the public split slow; the private split, which decides, cannot be probed at all.

**The lookup flag.** The course's corpus package, installed on every laptop, holds every
tweet's label, the challenge's included: not looking them up is a rule, not a lock. A model does
not agree with these low-agreement labels as well as a copy of them does, so a submission whose
agreement with the corpus labels, over the whole challenge, is beyond ``LOOKUP_AGREEMENT`` (the
best model measured, plus a margin) is flagged for the instructor, who decides. Nothing is
removed: a flag is a question, not a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable

HOUR_S = 3600.0
DEFAULT_LIMIT_PER_HOUR = 6

# Agreement (accuracy) on the whole challenge, 318 tweets, measured on 2026-12-07 with
# benchmarks/hackathon_calibration.py (docs/hackathon.md): tuned TF-IDF starter 0.664 (0.670
# with lesson 10's share matching), lesson 05's default fine-tuned model 0.676 (0.654). Its
# sampling error is about 0.03, so a model is not expected to pass the best by LOOKUP_MARGIN
# (five times that); a file copied from the corpus scores 1.0.
BEST_MEASURED_AGREEMENT = 0.676
LOOKUP_MARGIN = 0.15
LOOKUP_AGREEMENT = BEST_MEASURED_AGREEMENT + LOOKUP_MARGIN


def next_allowed(times: Iterable[float], now: float, limit: int) -> float | None:
    """When the next scored submission is allowed (seconds since the epoch), given the times
    of the team's scored ones; None when it is allowed now."""
    if limit < 1:
        raise ValueError(f"the limit per hour must be at least 1, got {limit}")
    recent = sorted(t for t in times if now - t < HOUR_S)
    if len(recent) < limit:
        return None
    return recent[-limit] + HOUR_S


def agreement(predicted: dict[str, str], reference: dict[str, str]) -> float | None:
    """The share of ``reference``'s tweets answered with its label (None: no reference)."""
    if not reference:
        return None
    return sum(predicted.get(i) == label for i, label in reference.items()) / len(reference)


def looks_up_labels(share: float | None, threshold: float = LOOKUP_AGREEMENT) -> bool:
    """True when ``share`` (from ``agreement``) is beyond what a model reaches."""
    return share is not None and share > threshold
