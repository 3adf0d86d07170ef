"""The model behind the service: texts in, probabilities out, and the micro-batcher around it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import inference
from ..artifacts import labels_of, trained_max_tokens
from ..settings import MAX_TOKENS
from .validation import MAX_TEXTS

BACKENDS = ("onnx", "torch")


@dataclass
class Predictor:
    """Texts in, probabilities out, plus what ``GET /model`` reports.

    ``predict_proba``: list of n texts -> ``(n, C)`` probabilities, each text cut to
    ``max_tokens`` tokens; ``count_tokens``: tokens per text, counted up to ``max_tokens + 1``
    (all we need to know is "over the limit?").
    """

    predict_proba: Callable[[Sequence[str]], Any]
    labels: list[str]
    name: str
    backend: str
    count_tokens: Callable[[Sequence[str]], list[int]] = lambda texts: [0] * len(texts)
    fingerprint: str = ""
    max_tokens: int = MAX_TOKENS

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """One ``{"label", "scores", "truncated"}`` per text."""
        probs = self.predict_proba(list(texts))
        n_tokens = self.count_tokens(list(texts))
        out = []
        for row, n in zip(probs, n_tokens):
            scores = {label: round(float(p), 6) for label, p in zip(self.labels, row)}
            out.append(
                {
                    "label": max(scores, key=scores.get),
                    "scores": scores,
                    "truncated": n > self.max_tokens,
                }
            )
        return out


def load_predictor(
    model_dir: str | os.PathLike, backend: str = "onnx", threads: int | None = None
) -> Predictor:
    """Load the classifier in ``model_dir`` with ``backend`` ``"onnx"`` (ONNX Runtime int8,
    exported and cached on first use) or ``"torch"`` (PyTorch fp32 eager).

    Texts are cut at the token limit the model was trained with (``trained_max_tokens``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(
            f"--model must be a folder written by save_pretrained() (config.json, weights, "
            f"tokenizer); got {str(model_dir)!r}"
        )
    max_tokens = trained_max_tokens(model_dir)
    if threads:
        import torch

        torch.set_num_threads(threads)
    # No spinning: idle inference threads must not steal the cores the event loop needs.
    variant = (
        inference.onnx_int8(model_dir, threads=threads, spinning=False)
        if backend == "onnx"
        else inference.eager_fp32(model_dir)
    )
    tokenizer = variant.tokenizer

    def predict_proba(texts):
        return inference.softmax_rows(variant.run(inference.tokenize(tokenizer, texts, max_tokens)))

    def count_tokens(texts):
        ids = tokenizer(list(texts), truncation=True, max_length=max_tokens + 1)["input_ids"]
        return [len(row) for row in ids]

    return Predictor(
        predict_proba,
        variant.labels or labels_of(model_dir),
        model_dir.resolve().name,
        backend,
        count_tokens,
        inference.weights_fingerprint(model_dir),
        max_tokens,
    )


class MicroBatcher:
    """Run the texts of concurrent requests through the model together.

    Requests queue up while the model is busy; the next model call takes every queued request,
    up to ``max_batch`` texts, waiting at most ``max_wait_ms`` for more to arrive (0: take what is
    there, which adds no latency when the server is idle). One model call at a time.
    """

    def __init__(
        self,
        fn: Callable[[list[str]], list],
        executor,
        max_batch: int = MAX_TEXTS,
        max_wait_ms: float = 0.0,
    ):
        self.fn, self.executor, self.max_batch = fn, executor, max_batch
        self.max_wait = max_wait_ms / 1e3
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # texts per model call, for the curious (GET /model)
        self._carry = None  # a request that did not fit in the last batch: first in the next

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def submit(self, texts: list[str]) -> list:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _collect(self, first) -> list:
        loop = asyncio.get_running_loop()
        items, n = [first], len(first[0])
        deadline = loop.time() + self.max_wait
        while n < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            if n + len(item[0]) > self.max_batch:
                self._carry = item
                break
            items.append(item)
            n += len(item[0])
        return items

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = self._carry or await self.queue.get()
            self._carry = None
            # skip requests whose client has gone (their future was cancelled)
            items = [it for it in await self._collect(first) if not it[1].done()]
            if not items:
                continue
            texts = [t for its, _ in items for t in its]
            self.batch_sizes.append(len(texts))
            del self.batch_sizes[:-1000]
            try:
                results = await loop.run_in_executor(self.executor, self.fn, texts)
            except Exception as exc:  # hand the failure to every waiting request
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            start = 0
            for its, fut in items:
                if not fut.done():
                    fut.set_result(results[start : start + len(its)])
                start += len(its)
