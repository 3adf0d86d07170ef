"""Batches of token ids for lesson 05: tokenise once, pad each batch to its own longest text,
and group texts of similar length so that padding stays small.

``encode`` -> ``length_bucketed_batches`` (which examples go together) -> ``pad_batch`` (the
tensors the model gets). ``padding_fraction`` measures what bucketing saves.
"""

from __future__ import annotations

import numpy as np
import torch

from .runtime.exercises import Case, check_exercise
from .settings import MAX_TOKENS


def encode(tokenizer, texts: list[str], max_length: int = MAX_TOKENS) -> list[list[int]]:
    """Token ids of each text (with ``[CLS]``/``[SEP]``, truncated to ``max_length``, no
    padding)."""
    if isinstance(texts, str):
        raise ValueError("encode() expects a list of texts, got a single str; wrap it in a list")
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def pad_to_longest(sequences: list[list[int]], pad_id: int = 0) -> torch.Tensor:
    """Right-pad ``sequences`` with ``pad_id`` to the longest one: ``(B, L_max)`` int64."""
    if len(sequences) == 0:
        raise ValueError("pad_to_longest() got no sequences; expected at least one")
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def pad_batch(sequences: list[list[int]], labels: list[int] | None = None, pad_id: int = 0) -> dict:
    """Dynamic padding: a batch padded to its own longest sequence, not to a global maximum.

    Returns ``input_ids (B, L)``, ``attention_mask (B, L)`` (1 = real token, 0 = padding) and,
    when given, ``labels (B,)``.
    """
    lengths = torch.tensor([len(s) for s in sequences])
    input_ids = pad_to_longest(sequences, pad_id)
    attention_mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        if len(labels) != len(sequences):
            raise ValueError(f"got {len(sequences)} sequences but {len(labels)} labels")
        batch["labels"] = torch.as_tensor(labels, dtype=torch.long)
    return batch


def length_bucketed_batches(
    lengths: list[int],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    bucket_batches: int = 50,
) -> list[list[int]]:
    """Indices grouped into batches of similar length.

    Without shuffling (evaluation): sort everything by length and cut. With shuffling (training):
    shuffle, cut into buckets of ``batch_size * bucket_batches`` examples, sort each bucket by
    length, cut it into batches, then shuffle the order of all batches -- random enough for SGD,
    while padding stays small.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(lengths)
    lengths = np.asarray(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    bucket = batch_size * max(1, bucket_batches)
    batches = []
    for start in range(0, n, bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def strided_parts(batch: list[int], n_parts: int) -> list[tuple[list[int], float]]:
    """``batch`` cut into ``n_parts`` strided parts, each with its share of the batch.

    Part ``k`` is ``batch[k::n_parts]`` and its share is ``n_k / n``: weighting each part's mean
    loss by its share and adding them up gives the mean loss over the whole batch (gradient
    accumulation: one ``backward()`` per part, then one optimizer step). The batch is sorted by
    length, so every part gets short and long examples. A part left empty (a batch smaller than
    ``n_parts``) gets the batch's first example with share 0: it still runs forward and backward
    (under DDP, lesson 08, every rank must join the all-reduce) and counts for nothing.
    """
    if n_parts < 1:
        raise ValueError(f"n_parts must be >= 1, got {n_parts}")
    if len(batch) == 0:
        raise ValueError("strided_parts() got an empty batch; expected at least one index")
    parts = []
    for k in range(n_parts):
        share = list(batch[k::n_parts])
        parts.append((share, len(share) / len(batch)) if share else ([batch[0]], 0.0))
    return parts


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """Share of the padded batch tensors that is ``[PAD]`` (what bucketing saves)."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    total = sum(int(lengths[b].max()) * len(b) for b in batches)
    return 1.0 - real / total


# Exercise checker (lesson 05)
def check_pad_to_longest(fn, verbose: bool = True):
    """Checker for the dynamic-padding exercise: ``fn(sequences, pad_id) -> (B, L_max) int64``."""

    hint = (
        "make a (B, longest) tensor full of pad_id (dtype torch.long), "
        "then copy each sequence into its row."
    )
    cases = [
        Case("two sequences", ([[101, 7, 102], [101, 102]], 0), hint=hint),
        Case("already equal lengths", ([[1, 2], [3, 4]], 0), hint=hint),
        Case(
            "pad_id = 5",
            ([[101, 9, 9, 102], [101, 102], [101, 8, 102]], 5),
            hint="use the pad_id argument, not a hard-coded 0.",
        ),
        Case("one sequence", ([[101, 2023, 102]], 0), hint=hint),
    ]
    return check_exercise("dynamic padding", fn, pad_to_longest, cases, verbose=verbose).function
