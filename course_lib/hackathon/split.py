"""Stratified, seeded splits of a labelled set: the dev set out of the low-agreement tweets, and
the challenge's public and private halves.

Why stratified: with about 300 tweets and a rare class (negatives are 13 % of the challenge),
a plain random split can leave one half with far fewer negatives than the other, and macro-F1
weighs that class as much as the others. Each label's share is therefore kept in both parts
(largest-remainder rounding, so the sizes add up exactly).

Why our own few lines instead of scikit-learn's ``train_test_split``: the split of an
instructor's answers file must come out the same on every machine and every version, and it
must work on tiny test sets (one tweet of a class is fine here).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

PUBLIC_SHARE = 0.4  # of the challenge on the live board; the rest (private) decides the final
SPLIT_SEED = 0


def stratified_counts(labels: Sequence[str], size: int) -> dict[str, int]:
    """How many items of each label a stratified sample of ``size`` takes (largest remainder:
    each label gets the floor of its share, the leftover goes to the largest fractions)."""
    if not 0 <= size <= len(labels):
        raise ValueError(f"cannot take {size} of {len(labels)} items; expected 0 <= size <= n")
    totals: dict[str, int] = {}
    for label in labels:
        totals[label] = totals.get(label, 0) + 1
    shares = {label: size * n / len(labels) for label, n in totals.items()} if labels else {}
    counts = {label: math.floor(share) for label, share in shares.items()}
    by_fraction = sorted(shares, key=lambda label: (-(shares[label] - counts[label]), label))
    for label in by_fraction[: size - sum(counts.values())]:
        counts[label] += 1
    return counts


def stratified_sample(
    items: Sequence, labels: Sequence[str], size: int, seed: int = SPLIT_SEED
) -> tuple[list, list]:
    """``(picked, rest)``: ``size`` items drawn at random within each label, each part in the
    order of ``items``. The same inputs and seed give the same parts on every machine."""
    if len(items) != len(labels):
        raise ValueError(f"got {len(items)} items but {len(labels)} labels; expected equal lengths")
    if len(set(items)) != len(items):
        raise ValueError("the items must be distinct (they identify tweets)")
    counts = stratified_counts(labels, size)
    rng = random.Random(seed)
    chosen = set()
    for label in sorted(counts):
        members = [item for item, y in zip(items, labels) if y == label]
        rng.shuffle(members)
        chosen.update(members[: counts[label]])
    return [i for i in items if i in chosen], [i for i in items if i not in chosen]


def public_private(
    ids: Sequence[str], labels: Sequence[str], share: float = PUBLIC_SHARE, seed: int = SPLIT_SEED
) -> tuple[list[str], list[str]]:
    """The challenge's ``(public, private)`` ids: ``share`` of each label on the live board."""
    if not 0 < share < 1:
        raise ValueError(f"the public share must be between 0 and 1, got {share}")
    return stratified_sample(list(ids), list(labels), round(share * len(ids)), seed)
