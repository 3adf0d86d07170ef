"""A closed-loop load test of a running service, its latency figures, and lesson 07's Little's-law
exercise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from jupyter_core.utils import run_sync

from ..runtime.exercises import Case, check_exercise
from ..settings import by_profile


@dataclass
class LoadTestResult:
    """Latencies of a load test, in ms, and its errors."""

    requests: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    error_samples: list[str] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        return (
            f"{self.requests} requests, concurrency {self.concurrency}: {self.errors} errors, "
            f"{self.requests_per_s:.0f} req/s, latency p50 {self.percentile(50):.1f} ms, "
            f"p95 {self.percentile(95):.1f} ms, p99 {self.percentile(99):.1f} ms"
        )


def littles_law_latency_ms(concurrency: float, requests_per_s: float) -> float:
    """Little's law: the mean time a request spends in the system, ``C / X``, in ms.

    With ``concurrency`` (C) requests in flight on average and ``requests_per_s`` (X) of them
    finishing per second, each one stays ``C / X`` seconds, whatever happens inside.
    """
    if requests_per_s <= 0:
        raise ValueError(f"requests_per_s must be > 0, got {requests_per_s!r}")
    return 1000.0 * concurrency / requests_per_s


def check_mean_latency(fn, verbose: bool = True):
    """Checker for ``fn(concurrency, requests_per_s) -> mean latency in ms`` (Little's law);
    returns the function to use from here on."""

    hint = (
        "C requests are in the system at any moment and X leave it each second; how long "
        "until one that just arrived has left? Answer in milliseconds."
    )
    cases = [
        Case("one request at a time, 100 requests/s", (1, 100.0), hint=hint),
        Case("16 in flight, 250 requests/s", (16, 250.0), hint=hint),
        Case(
            "64 in flight, 80 requests/s",
            (64, 80.0),
            hint="more requests in flight at the same throughput means a longer wait each.",
        ),
    ]

    def rounded(f):  # to the microsecond, so that the order of * and / does not matter
        return lambda *args: round(float(f(*args)), 3)

    result = check_exercise(
        "Little's law", rounded(fn), rounded(littles_law_latency_ms), cases, verbose=verbose
    )
    return fn if result.passed else littles_law_latency_ms


def plot_latency_histograms(runs: dict[str, LoadTestResult], ax=None, title: str | None = None):
    """One histogram per load test on a shared log-spaced axis, with its p50 (solid), p95
    (dashed) and p99 (dotted) as vertical lines; the legend sits beside the axes."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    from ..plots import plain_log_ticks

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    all_ms = np.concatenate([r.latencies_ms for r in runs.values()])
    bins = np.logspace(np.log10(all_ms.min()), np.log10(all_ms.max()), 70)
    styles = ((50, "-"), (95, "--"), (99, ":"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, r), color in zip(runs.items(), colors):
        ax.hist(
            r.latencies_ms,
            bins=bins,
            alpha=0.55,
            color=color,
            density=True,
            label=f"{name}: {r.requests_per_s:.0f} req/s",
        )
        for q, style in styles:
            ax.axvline(r.percentile(q), color=color, ls=style, lw=1)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="gray", ls=style, lw=1, label=f"p{q}") for q, style in styles]
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("latency per request, seen by the client (ms, log scale)")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(
        handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0
    )
    return ax


def default_requests() -> int:
    """How many requests a load test sends by default: 2,000 under the ``full`` run profile, 300
    under ``quick``."""
    return by_profile(full=2000, quick=300)


def load_test(
    url: str,
    texts: Sequence[str],
    requests: int | None = None,
    concurrency: int = 16,
    token: str | None = None,
    texts_per_request: int = 1,
    timeout: float = 30.0,
    progress: bool = False,
) -> LoadTestResult:
    """``requests`` POSTs (default ``default_requests()``) to ``url + "/predict"``,
    ``concurrency`` in flight at any time.

    Request ``i`` sends ``texts_per_request`` texts starting at ``texts[i % len(texts)]``. An error
    is any non-200 answer or a failed connection. Latency is measured by the client, from
    sending to the full answer, so it includes queueing in the server.
    """
    requests = default_requests() if requests is None else requests
    if requests < 1 or concurrency < 1 or not texts:
        raise ValueError(
            f"need requests >= 1, concurrency >= 1 and some texts; got {requests}, {concurrency}, "
            f"{len(texts)} texts"
        )
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    texts = list(texts)

    async def run() -> LoadTestResult:
        latencies, samples = [], []
        errors = 0
        counter = iter(range(requests))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=requests, desc=f"load test ({concurrency} concurrent)", leave=False)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url, timeout=timeout, limits=limits, trust_env=False, headers=headers
        ) as client:

            async def worker():
                nonlocal errors
                for i in counter:
                    batch = [texts[(i + j) % len(texts)] for j in range(texts_per_request)]
                    body = {"text": batch[0] if texts_per_request == 1 else batch}
                    start = time.perf_counter()
                    try:
                        r = await client.post("/predict", json=body)
                        ok = r.status_code == 200
                        problem = f"{r.status_code}: {r.text[:120]}"
                    except httpx.HTTPError as exc:
                        ok, problem = False, f"{type(exc).__name__}: {exc}"
                    if ok:
                        latencies.append((time.perf_counter() - start) * 1e3)
                    else:
                        errors += 1
                        if len(samples) < 5:
                            samples.append(problem)
                    if bar is not None:
                        bar.update()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        return LoadTestResult(requests, concurrency, seconds, latencies, errors, samples)

    return run_sync(run)()
