"""Fair ranking: which submission counts for a team, and ties within the noise of the score.

**The counted submission.** A team may choose which of its scored submissions counts; without
a choice, its best one on the public split counts (the earliest of equal bests). The final
ranking scores that same submission on the private split, so probing the public board buys
nothing there.

**Ties.** Macro-F1 on a few hundred tweets moves by a few hundredths with the luck of the draw.
How much is measured, not assumed: the tweets of the split are resampled with replacement
(``ROUNDS`` bootstrap rounds, seeded, the same resamples for every team) and every team's score
is recomputed on each resample. Going down the table, a team shares the rank of the *first team
of its group* unless that team scores higher on at least ``LEVEL`` (97.5 %) of the resamples,
i.e. unless the 95 % bootstrap interval of their difference lies wholly above zero; then it
opens a new group. Each team is compared with the group's leader, not with its neighbour, so
ties do not chain down the table (the old rule, "within 0.005 of the team above", could tie the
first team to the tenth through a staircase of small steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data import LABELS
from .submissions import NO_ANSWER

ROUNDS = 1000
LEVEL = 0.975  # one side of a two-sided 95 % interval
BOOTSTRAP_SEED = 0


def label_indices(labels: Sequence[str]) -> np.ndarray:
    """Labels as indices into ``LABELS``; anything else (``NO_ANSWER``) as -1, wrong for every
    class."""
    index = {label: k for k, label in enumerate(LABELS)}
    return np.array([index.get(label, -1) for label in labels], dtype=np.int64)


def predictions_for(predicted: dict[str, str], ids: Sequence[str]) -> np.ndarray:
    """A team's answers in the order of ``ids`` (a missing id counts as ``NO_ANSWER``)."""
    return label_indices([predicted.get(i, NO_ANSWER) for i in ids])


def bootstrap_weights(n: int, rounds: int = ROUNDS, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``(rounds, n)``: how often each tweet is drawn in each resample (row 0: the split as is)."""
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=rounds).astype(np.float64)
    weights[0] = 1.0
    return weights


def weighted_macro_f1(truth: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 over ``LABELS`` for each row of ``weights`` (a class never predicted nor present
    scores 0, as scikit-learn's ``zero_division=0``). Row of ones: the plain macro-F1."""
    per_class = []
    for k in range(len(LABELS)):
        is_true, is_pred = truth == k, predicted == k
        tp = weights @ (is_true & is_pred)
        wrong = weights @ (is_true ^ is_pred)  # false positives plus false negatives
        denominator = 2 * tp + wrong
        per_class.append(
            np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        )
    return np.mean(per_class, axis=0)


def tied_ranks(samples: Sequence[np.ndarray], level: float = LEVEL) -> list[int]:
    """Ranks (1 = best) of entries already sorted best first, each given by its scores on the
    same resamples (row 0 of the bootstrap = the real score). Standard competition numbering:
    two teams sharing rank 1 are followed by rank 3."""
    ranks: list[int] = []
    leader = None
    for position, scores in enumerate(samples):
        if leader is not None and np.mean(samples[leader] > scores) < level:
            ranks.append(ranks[leader])
        else:
            leader = position
            ranks.append(position + 1)
    return ranks


@dataclass
class Candidate:
    """One submission a team could have counted: its id, scores, and time."""

    id: int
    public: float | None  # None: rejected, cannot count
    time: float


def counted_submission(candidates: Sequence[Candidate], chosen: int | None = None) -> int | None:
    """The id that counts: ``chosen`` if it is one of the scored candidates, else the best
    public score (the earliest of equal bests); None when nothing was scored."""
    scored = [c for c in candidates if c.public is not None]
    if chosen is not None and any(c.id == chosen for c in scored):
        return chosen
    if not scored:
        return None
    return min(scored, key=lambda c: (-c.public, c.time, c.id)).id
