"""One honest way to compare model variants (lesson 06): file size, p50 / p95 latency at batch
1, throughput at batch 32, and test-set macro-F1, for several variants measured in the same run,
their latency rounds interleaved so that a busy machine slows every variant alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .inference import Variant, tokenize
from .metrics import macro_f1
from .plots import plain_log_ticks
from .settings import MAX_TOKENS, by_profile


@dataclass
class Measurement:
    """One row of the comparison table."""

    name: str
    size_mb: float
    p50_ms: float
    p95_ms: float
    throughput: float  # texts per second at batch 32
    macro_f1: float
    accuracy: float
    sparsity: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "latencies_ms"}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation as in ``numpy.percentile``."""
    if len(values) == 0:
        raise ValueError("percentile of an empty list")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def measure(
    variants: Sequence[Variant],
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    latency_texts: Sequence[str] | None = None,
    latency_rounds: int | None = None,
    warmup: int = 10,
    batch_size: int = 32,
    sort_by_length: bool = True,
    progress: bool = True,
) -> list[Measurement]:
    """Measure every variant in the same run; one ``Measurement`` per variant, in order.

    - **size**: bytes of the files the variant needs, in MB (10^6 bytes);
    - **latency at batch 1**: ``latency_rounds`` rounds (default: 200 under the ``full`` run
      profile, 20 under ``quick``); in each round every variant classifies
      one text (cycling through ``latency_texts``, default 64 texts spread over ``texts``), in a
      rotating order. Interleaving means a burst of load from elsewhere on the machine hits all
      variants alike, so their ratio stays fair. Reported as p50 and p95 in ms. Timed: text in,
      logits out (tokenisation included; ``benchmarks/tokenizer_speed.py`` measures its share).
    - **throughput at batch 32**: texts per second over one pass of ``texts`` in batches of
      ``batch_size``, each padded to its longest text. With ``sort_by_length`` (the default) the
      texts are first ordered by token count, as a batch job would do, so little is padding;
    - **macro-F1** and accuracy of that same pass against ``labels``. Under the ``quick``
      profile the pass takes every k-th text, 500 at most.
    """
    if len(variants) == 0:
        raise ValueError("measure needs at least one variant")
    if len(texts) != len(labels) or len(texts) == 0:
        raise ValueError(
            f"texts and labels must be non-empty and of equal length, got {len(texts)} "
            f"texts and {len(labels)} labels"
        )
    if latency_rounds is None:
        latency_rounds = by_profile(full=200, quick=20)
    if latency_rounds < 1:
        raise ValueError(f"latency_rounds must be >= 1, got {latency_rounds}")
    from tqdm.auto import tqdm

    latency_texts = list(latency_texts or texts[:: max(1, len(texts) // 64)][:64])
    step = by_profile(full=1, quick=-(-len(texts) // 500))  # every k-th text, 500 at most
    texts, labels = list(texts)[::step], list(labels)[::step]
    batches = [tokenize(v.tokenizer, [latency_texts[0]]) for v in variants]
    for v, batch in zip(variants, batches):  # warm up: first calls allocate and pick kernels
        for _ in range(warmup):
            v.run(batch)

    timings = [[] for _ in variants]
    order = list(range(len(variants)))
    for r in tqdm(
        range(latency_rounds), desc="latency (batch 1)", disable=not progress, leave=False
    ):
        text = [latency_texts[r % len(latency_texts)]]
        for i in order:
            start = time.perf_counter()
            variants[i].logits(text)
            timings[i].append((time.perf_counter() - start) * 1e3)
        order = order[1:] + order[:1]

    rows = []
    y_true = np.asarray(labels)
    order = np.arange(len(texts))
    if sort_by_length:  # same order for every variant: lengths from the first one's tokenizer
        lengths = [
            len(ids)
            for ids in variants[0].tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)[
                "input_ids"
            ]
        ]
        order = np.argsort(lengths, kind="stable")
    ordered = [texts[i] for i in order]
    for v, lat in tqdm(
        list(zip(variants, timings)), desc="test set (batch 32)", disable=not progress, leave=False
    ):
        v.logits(ordered[:batch_size])  # warm up at this batch shape
        start = time.perf_counter()
        y_sorted = v.predict(ordered, batch_size=batch_size)
        seconds = time.perf_counter() - start
        y_pred = np.empty_like(y_sorted)
        y_pred[order] = y_sorted
        rows.append(
            Measurement(
                name=v.name,
                size_mb=v.size_bytes / 1e6,
                p50_ms=percentile(lat, 50),
                p95_ms=percentile(lat, 95),
                throughput=len(texts) / seconds,
                macro_f1=macro_f1(y_true, y_pred, len(v.labels) or None),
                accuracy=float((y_pred == y_true).mean()),
                sparsity=v.sparsity,
                latencies_ms=lat,
            )
        )
    return rows


def format_table(rows: Sequence[Measurement], baseline: str | None = None) -> str:
    """A plain-text table of measurements; ``speed-up`` is baseline p50 / row p50."""
    base = next((r for r in rows if r.name == baseline), rows[0]) if rows else None
    header = (
        f"{'variant':<16}{'size MB':>9}{'p50 ms':>9}{'p95 ms':>9}{'texts/s @32':>13}"
        f"{'macro-F1':>10}{'accuracy':>10}{'sparsity':>10}{'speed-up':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.name:<16}{r.size_mb:>9.1f}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.throughput:>13.0f}"
            f"{r.macro_f1:>10.4f}{r.accuracy:>10.4f}{r.sparsity:>10.2f}"
            f"{base.p50_ms / r.p50_ms:>9.1f}x"
        )
    return "\n".join(lines)


def speedup(rows: Sequence[Measurement], slow: str, fast: str) -> float:
    """p50 latency of ``slow`` divided by p50 latency of ``fast`` (both from the same ``measure``
    run)."""
    by_name = {r.name: r for r in rows}
    missing = [n for n in (slow, fast) if n not in by_name]
    if missing:
        raise ValueError(f"no measurement named {missing}; have {sorted(by_name)}")
    return by_name[slow].p50_ms / by_name[fast].p50_ms


def plot_latency_vs_f1(rows: Sequence[Measurement], ax=None):
    """Scatter of p50 latency (log x) against macro-F1, marker area proportional to file size.

    Each variant is named in a legend beside the axes (with its size), so that variants whose
    points nearly coincide (the pruned ones and fp32) stay readable.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for r in rows:
        ax.scatter(
            r.p50_ms,
            r.macro_f1,
            s=max(20.0, r.size_mb * 3),
            alpha=0.7,
            edgecolors="black",
            linewidths=0.5,
            label=f"{r.name}, {r.size_mb:.0f} MB",
        )
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel("p50 latency at batch 1 (ms, log scale)")
    ax.set_ylabel("test macro-F1")
    ax.set_title("Faster is left, better is up (marker area ~ file size)")
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, labelspacing=1.2
    )
    return ax


def plot_latency_spread(rows: Sequence[Measurement], ax=None):
    """Box plot of each variant's batch-1 latencies (log x): box p25-p75, line p50, whiskers
    p5-p95, one row per variant in table order."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.boxplot(
        [r.latencies_ms for r in rows],
        orientation="horizontal",
        whis=(5, 95),
        showfliers=False,
        medianprops={"color": "tab:red"},
    )
    ax.set_yticks(range(1, len(rows) + 1), [r.name for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("batch-1 latency (ms, log scale)")
    ax.set_title("Latency over the rounds (box p25-p75, line p50, whiskers p5-p95)")
    return ax
