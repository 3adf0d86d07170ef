"""Serve the fine-tuned classifier over HTTP: FastAPI + uvicorn, safe by default.

    python -m course_lib serve --model PATH [--backend onnx|torch] [--host 127.0.0.1] [--port N]

Endpoints
---------
- ``POST /predict``  body ``{"text": "one tweet"}`` or ``{"text": ["a", "list"]}``; answers
  ``{"predictions": [{"label": ..., "scores": {label: probability}, "truncated": bool}], ...}``,
  one prediction per text, in order (a list even for a single text).
- ``GET /health``    ``{"status": "ok"}`` once the model is loaded.
- ``GET /model``     name, labels, backend, version, and the input limits below.
- ``GET /docs``      API documentation, rendered from ``GET /openapi.json`` by a self-contained
  page (FastAPI's default Swagger page loads its code from a CDN, which does not work offline).
- ``GET /``          a demo page: type a text, see the class probabilities as bars. Inline CSS
  and JavaScript only; its Content-Security-Policy forbids loading anything from elsewhere.

Safety defaults
---------------
- Binds ``127.0.0.1`` (this machine only). Binding another address without a token prints a
  loud warning.
- Bearer token: when the environment variable ``COURSE_API_TOKEN`` is set, ``POST /predict``
  requires ``Authorization: Bearer <token>`` (401 when missing, 403 when wrong). The demo page,
  ``/health``, ``/model`` and the docs stay public; the demo page has a token field, so it works
  with a token too.
- Input limits, each answered with a 4xx JSON error ``{"error": code, "message": text}``,
  never a 500, and the server carries on:

  =====================================  ======  =====================
  what                                   status  error code
  =====================================  ======  =====================
  body over ``MAX_BODY_BYTES`` (64 KiB)  413     ``body_too_large``
  Content-Type not application/json      415     ``unsupported_media_type``
  body not valid UTF-8                   400     ``invalid_utf8``
  body not JSON (or nested too deep)     400     ``invalid_json``
  wrong types, missing ``text``          422     ``invalid_request``
  unknown fields                         422     ``unknown_field``
  empty (or blank) string                422     ``empty_text``
  empty list                             422     ``empty_list``
  more than ``MAX_TEXTS`` (64) texts     422     ``too_many_texts``
  a text over ``MAX_TEXT_CHARS`` (1000)  422     ``text_too_long``
  a text with lone surrogates            422     ``invalid_text``
  missing / malformed token              401     ``missing_token``
  wrong token                            403     ``wrong_token``
  =====================================  ======  =====================

  **Length policy:** a text over 1,000 *characters* is rejected (a tweet has at most 280). A
  text within that limit but over 128 *tokens* is truncated to its first 128 tokens, and its
  prediction says ``"truncated": true``.

Concurrency: one inference thread runs the model (with ``--threads`` threads of its own, default
1), while the event loop keeps accepting requests on another core. **Micro-batching** runs the
texts of all requests that arrived while the model was busy as one batch. It pays when one model
call has a large fixed cost: PyTorch eager spends milliseconds in Python per call, and batching
served about 1.5x the requests/s in our load test. ONNX Runtime int8 has almost no fixed cost
per call, and a batch must be padded to its longest text, so there batching bought nothing (or
lost a little). Hence ``--batching auto`` (the default): on for ``torch``, off for ``onnx``;
``--batching on|off`` forces it (``--no-batching`` = ``--batching off``). Measure it yourself with
``benchmarks/load_test.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hmac
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.requests import (
    Request,
)  # at module level: FastAPI resolves endpoint annotations here

TOKEN_ENV = "COURSE_API_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MAX_BODY_BYTES = 64 * 1024
MAX_TEXTS = 64
MAX_TEXT_CHARS = 1000
MAX_TOKENS = (
    128  # longer texts are truncated to this many tokens (see course_lib.optimize.MAX_LENGTH)
)
BACKENDS = ("onnx", "torch")


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A client error, answered as ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(code: str, message: str) -> dict:
    return {"error": code, "message": message}


def validate_texts(
    payload: Any, max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS
) -> list[str]:
    """Check a decoded JSON body and return its texts as a list; raise ``ApiError`` (422) if wrong.

    Accepted: an object with exactly one field, ``text``, holding a non-blank string or a
    non-empty list of at most ``max_texts`` such strings, each at most ``max_chars`` characters.
    """
    if not isinstance(payload, dict):
        raise ApiError(
            422,
            "invalid_request",
            f'the body must be a JSON object like {{"text": "..."}}, got a JSON {_json_type(payload)}',
        )
    unknown = sorted(set(payload) - {"text"})
    if unknown:
        raise ApiError(
            422, "unknown_field", f"unknown field(s) {unknown}; the only field is 'text'"
        )
    if "text" not in payload:
        raise ApiError(
            422, "invalid_request", "missing field 'text' (a string or a list of strings)"
        )
    text = payload["text"]
    if isinstance(text, str):
        texts, where = [text], lambda i: "text"
    elif isinstance(text, list):
        if not text:
            raise ApiError(422, "empty_list", "'text' is an empty list; send at least one text")
        if len(text) > max_texts:
            raise ApiError(
                422,
                "too_many_texts",
                f"'text' holds {len(text)} texts; the limit is {max_texts} per request",
            )
        texts, where = text, lambda i: f"text[{i}]"
    else:
        raise ApiError(
            422,
            "invalid_request",
            f"'text' must be a string or a list of strings, got a JSON {_json_type(text)}",
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ApiError(
                422, "invalid_request", f"{where(i)} must be a string, got a JSON {_json_type(t)}"
            )
        if not t.strip():
            raise ApiError(422, "empty_text", f"{where(i)} is empty or only whitespace")
        if len(t) > max_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"{where(i)} has {len(t)} characters; the limit is {max_chars} "
                f"(longer texts are rejected, not truncated)",
            )
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(
                422,
                "invalid_text",
                f"{where(i)} contains a lone surrogate (\\ud800-\\udfff), which is not a character",
            ) from None
    return list(texts)


def _json_type(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def decode_json_body(body: bytes) -> Any:
    """UTF-8 bytes -> Python value; ``ApiError`` 400 for bytes that are not UTF-8 or not JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_utf8",
            f"the body is not valid UTF-8 (byte {exc.start}: {body[exc.start : exc.start + 1]!r})",
        ) from None
    if not text.strip():
        raise ApiError(400, "invalid_json", 'the body is empty; expected JSON like {"text": "..."}')
    try:
        return json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise ``ApiError`` 401/403 unless ``authorization`` is ``Bearer <expected>`` (no-op without a token)."""
    if not expected:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization:
        raise ApiError(
            401,
            "missing_token",
            "this server needs a token: send 'Authorization: Bearer <token>'",
            challenge,
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "missing_token", "the Authorization header must read 'Bearer <token>'", challenge
        )
    # Compare bytes in constant time; headers arrive latin-1 decoded, so this cannot fail.
    if not hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), expected.encode("utf-8")
    ):
        raise ApiError(403, "wrong_token", "the token does not match", challenge)


# --------------------------------------------------------------------------- the model behind it


@dataclass
class Predictor:
    """Texts in, probabilities out: a ``course_lib.optimize.Variant`` plus what ``/model`` reports."""

    predict_proba: Callable[[Sequence[str]], Any]  # list of n texts -> (n, C) probabilities
    labels: list[str]
    name: str
    backend: str
    count_tokens: Callable[[Sequence[str]], list[int]] = lambda texts: [0] * len(texts)
    fingerprint: str = ""

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
                    "truncated": n > MAX_TOKENS,
                }
            )
        return out


def load_predictor(
    model_dir: str | os.PathLike, backend: str = "onnx", threads: int | None = None
) -> Predictor:
    """Load the classifier in ``model_dir`` with ``backend`` ``"onnx"`` (ONNX Runtime int8, exported
    and cached on first use) or ``"torch"`` (PyTorch fp32 eager)."""
    from . import optimize

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(
            f"--model must be a folder written by save_pretrained() (config.json, weights, "
            f"tokenizer); got {str(model_dir)!r}"
        )
    if threads:
        import torch

        torch.set_num_threads(threads)
    # No spinning: idle inference threads must not steal the cores the event loop needs.
    variant = (
        optimize.onnx_int8(model_dir, threads=threads, spinning=False)
        if backend == "onnx"
        else optimize.eager_fp32(model_dir)
    )
    tokenizer = variant.tokenizer

    def count_tokens(texts):  # stop counting one past the limit: all we need to know is "over?"
        return [
            len(ids)
            for ids in tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS + 1)[
                "input_ids"
            ]
        ]

    return Predictor(
        variant.predict_proba,
        variant.labels or optimize.labels_of(model_dir),
        model_dir.resolve().name,
        backend,
        count_tokens,
        optimize.weights_fingerprint(model_dir),
    )


# --------------------------------------------------------------------------- micro-batching


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
        self.fn, self.executor, self.max_batch, self.max_wait = (
            fn,
            executor,
            max_batch,
            max_wait_ms / 1e3,
        )
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # texts per model call, for the curious (GET /model)

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
                self._carry = item  # does not fit: first in the next batch
                break
            items.append(item)
            n += len(item[0])
        return items

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        self._carry = None
        while True:
            first = self._carry or await self.queue.get()
            self._carry = None
            items = [
                it for it in await self._collect(first) if not it[1].done()
            ]  # skip abandoned requests
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


# --------------------------------------------------------------------------- the app


class BodySizeLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` with 413 before the app reads them.

    A ``Content-Length`` over the limit is refused without reading the body; a chunked body is
    counted as it arrives. The (small) body is then handed to the app in one piece.
    """

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = ApiError(
            413, "body_too_large", f"the body is over the limit of {self.max_bytes} bytes"
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    return await _send_error(send, too_large)
            except ValueError:
                return await _send_error(
                    send, ApiError(400, "bad_request", "Content-Length is not a number")
                )
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _send_error(send, too_large)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)


async def _send_error(send, err: ApiError) -> None:
    payload = json.dumps(error_body(err.code, err.message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),
    ] + [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def static_page(name: str) -> str:
    """The text of ``course_lib/static/<name>`` (shipped as package data)."""
    return resources.files("course_lib").joinpath("static", name).read_text(encoding="utf-8")


def create_app(
    predictor: Predictor,
    token: str | None = None,
    batching: bool = True,
    max_wait_ms: float = 0.0,
    max_texts: int = MAX_TEXTS,
    max_text_chars: int = MAX_TEXT_CHARS,
    max_body_bytes: int = MAX_BODY_BYTES,
):
    """Build the FastAPI app around a ``Predictor``. ``token``: require it on ``POST /predict``."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from . import __version__

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        text: str | list[str] = Field(
            description=f"one text, or a list of at most {max_texts} texts; each "
            f"1 to {max_text_chars} characters",
            examples=["what a great flight!", ["great flight", "lost my bag"]],
        )

    class Prediction(BaseModel):
        label: str
        scores: dict[str, float]
        truncated: bool = Field(
            description=f"the text was longer than {MAX_TOKENS} tokens and was cut"
        )

    class PredictResponse(BaseModel):
        predictions: list[Prediction]
        model: str
        backend: str

    class ErrorResponse(BaseModel):
        error: str
        message: str

    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["executor"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        if batching:
            state["batcher"] = MicroBatcher(
                predictor.predict, state["executor"], max_texts, max_wait_ms
            )
            state["batcher"].start()
        yield
        if batching:
            await state["batcher"].stop()
        state["executor"].shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="course_lib sentiment service",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Tweet sentiment from a fine-tuned MiniLM. Errors are JSON: "
        '{"error": code, "message": text}. When the server was started with '
        f"{TOKEN_ENV} set, POST /predict needs the header 'Authorization: Bearer <token>'.",
    )

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return JSONResponse(error_body("invalid_request", str(exc.errors()[:3])), status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request, exc):  # a bug, not the client's fault: say so without details
        return JSONResponse(
            error_body("internal_error", "the server failed on this request; see its log"),
            status_code=500,
        )

    errors = {s: {"model": ErrorResponse} for s in (400, 401, 403, 413, 415, 422)}

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
            }
        },
    )
    async def predict(request: Request):
        """Classify one text or a list of texts; one prediction per text, in order."""
        check_token(token, request.headers.get("authorization"))
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the body as JSON with 'Content-Type: application/json' (got {content_type!r:.60})",
            )
        texts = validate_texts(decode_json_body(await request.body()), max_texts, max_text_chars)
        if batching:
            predictions = await state["batcher"].submit(texts)
        else:
            loop = asyncio.get_running_loop()
            predictions = await loop.run_in_executor(state["executor"], predictor.predict, texts)
        return {"predictions": predictions, "model": predictor.name, "backend": predictor.backend}

    @app.get("/health")
    async def health():
        """Answers {"status": "ok"} while the server is up with its model loaded."""
        return {"status": "ok"}

    @app.get("/model")
    async def model_info():
        """Which model answers, its labels and backend, and the input limits."""
        batch_sizes = state.get("batcher").batch_sizes if batching and state.get("batcher") else []
        return {
            "name": predictor.name,
            "labels": predictor.labels,
            "backend": predictor.backend,
            "version": __version__,
            "fingerprint": predictor.fingerprint,
            "limits": {
                "max_texts": max_texts,
                "max_text_chars": max_text_chars,
                "max_body_bytes": max_body_bytes,
                "max_tokens": MAX_TOKENS,
            },
            "token_required": bool(token),
            "batching": batching,
            "mean_batch": round(sum(batch_sizes) / len(batch_sizes), 2) if batch_sizes else None,
        }

    page_headers = {
        "Content-Security-Policy": PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo_page():
        return HTMLResponse(static_page("index.html"), headers=page_headers)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs_page():
        return HTMLResponse(static_page("docs.html"), headers=page_headers)

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app


# --------------------------------------------------------------------------- the command


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning to print when ``host`` is reachable from other machines and no token is set."""
    if is_loopback_host(host) or token:
        return None
    bar = "!" * 78
    return (
        f"{bar}\n!! WARNING: serving on {host} WITHOUT a token. Anyone who can reach this machine\n"
        f"!! can use the model. Set {TOKEN_ENV}=<a long random string> to require a token,\n"
        f"!! or bind 127.0.0.1 (the default) to keep it on this machine.\n{bar}"
    )


def _exit_when_parent_dies(interval: float = 0.5) -> None:
    """Stop this server when the process that started it is gone (e.g. a killed notebook kernel)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM
                time.sleep(5)
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def resolve_batching(choice: str, backend: str) -> bool:
    """``--batching auto|on|off`` -> on or off; auto is on for torch, off for onnx (see the module doc)."""
    if choice not in ("auto", "on", "off"):
        raise ValueError(f"batching must be 'auto', 'on' or 'off', got {choice!r}")
    return choice == "on" or (choice == "auto" and backend == "torch")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_lib serve",
        description="Serve a fine-tuned classifier over HTTP (FastAPI + uvicorn).",
        epilog=f"Set {TOKEN_ENV} to require 'Authorization: Bearer <token>' on /predict.",
    )
    p.add_argument(
        "--model",
        help="folder written by save_pretrained (default: the course's fine-tuned "
        "model in artifacts/, which notebook 05 trains)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="onnx",
        help="onnx: ONNX Runtime int8 (fast; exported on first use); torch: PyTorch fp32",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to bind (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads of the one inference worker (default 1: the event loop needs a core too)",
    )
    p.add_argument(
        "--batching",
        choices=("auto", "on", "off"),
        default="auto",
        help="micro-batch concurrent requests (auto: on for torch, off for onnx; see the module doc)",
    )
    p.add_argument(
        "--no-batching", dest="batching", action="store_const", const="off", help="= --batching off"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="micro-batching: how long to wait for more requests (default 0: only those queued)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .tooling.environment import quiet_libraries, set_offline

    set_offline()
    quiet_libraries()
    if args.exit_with_parent:
        _exit_when_parent_dies()
    if not 0 <= args.port <= 65535:
        print(f"--port must be in 0..65535, got {args.port}", file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_ENV) or None
    warning = exposure_warning(args.host, token)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if args.model is None:
        from .train import finetuned_model

        try:
            args.model = finetuned_model(train_if_missing=False)
        except Exception as exc:
            print(
                f"no --model given and no fine-tuned model found ({exc}). Run notebook 05 first, or pass "
                f"--model FOLDER.",
                file=sys.stderr,
            )
            return 2
    if args.threads < 1:
        print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    batching = resolve_batching(args.batching, args.backend)
    try:
        predictor = load_predictor(args.model, args.backend, args.threads)
    except (ValueError, OSError) as exc:
        print(f"cannot load the model: {exc}", file=sys.stderr)
        return 2
    app = create_app(predictor, token=token, batching=batching, max_wait_ms=args.max_wait_ms)
    import uvicorn

    print(
        f"course_lib serve: http://{args.host}:{args.port}/ (model {predictor.name}, backend "
        f"{predictor.backend}, token {'required' if token else 'off'}, batching "
        f"{'on' if batching else 'off'}, {args.threads} inference thread(s)); docs at /docs. Ctrl+C stops it.",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=args.access_log,
        timeout_keep_alive=5,
        limit_concurrency=256,
        server_header=False,
    )
    return 0


# --------------------------------------------------------------------------- running it from Python


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m course_lib serve`` as a child process, in its own process group.

    Use it as a context manager; ``stop()`` also runs at interpreter exit, and the server stops
    by itself when this process dies. So no server is left behind, even when a cell fails.

        with ServerProcess(model_dir) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        model: str | os.PathLike,
        backend: str = "onnx",
        host: str = DEFAULT_HOST,
        port: int | None = None,
        token: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike | None = None,
    ):
        self.model, self.backend, self.host = str(model), backend, host
        self.port = port or free_port(host)
        self.token, self.extra_args, self.startup_timeout = token, list(extra_args), startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "course_lib",
            "serve",
            "--model",
            self.model,
            "--backend",
            self.backend,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--exit-with-parent",
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        import tempfile

        env = dict(os.environ)
        env.pop(TOKEN_ENV, None)
        if self.token:
            env[TOKEN_ENV] = self.token
        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="course-serve-", suffix=".log")[1])
        self._log = open(self.log_path, "w")
        group = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            if os.name == "nt"
            else {"start_new_session": True}
        )  # own group: stop() ends it and anything it started
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            **group,
        )
        atexit.register(self.stop)
        try:
            self.wait_until_ready()
        except BaseException:  # exited, timed out, or Ctrl+C while waiting: leave nothing behind
            self.stop()
            raise
        return self

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def wait_until_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with status {self.process.returncode}:\n{self.log()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(
            f"the server did not answer /health within {self.startup_timeout:.0f} s:\n"
            f"{self.log()[-3000:]}"
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server's process group, wait, then SIGKILL what is left. Safe to call twice."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(signal.SIGTERM if os.name != "nt" else signal.CTRL_BREAK_EVENT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if os.name != "nt" else signal.SIGTERM)
                proc.wait(timeout)
        if os.name != "nt":  # anything the server started, still in its group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log and not self._log.closed:
            self._log.close()
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass
        return proc.returncode

    def _signal(self, sig) -> None:
        try:
            if os.name == "nt":
                self.process.send_signal(sig)
            else:
                os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- bad input, load


@dataclass
class BadInput:
    """One malformed request and the status it must get."""

    case: str
    body: bytes | None
    expected_status: int
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    method: str = "POST"
    path: str = "/predict"
    needs_token: bool = False  # only meaningful when the server has a token


def bad_inputs(
    max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS, max_body: int = MAX_BODY_BYTES
) -> list[BadInput]:
    """The bad requests the service must answer with a 4xx JSON error (tests and lesson 07 use them)."""
    j = lambda obj: json.dumps(obj).encode()  # noqa: E731
    return [
        BadInput("non-JSON body", b"this is not JSON", 400),
        BadInput("invalid UTF-8", b'{"text": "caf\xe9 \xff"}', 400),
        BadInput("JSON nested too deeply", b"[" * 50_000, 400),
        BadInput("wrong Content-Type", j({"text": "hello"}), 415, {"Content-Type": "text/plain"}),
        BadInput("wrong type: number", j({"text": 42}), 422),
        BadInput("wrong type: list of numbers", j({"text": ["ok", 3]}), 422),
        BadInput("wrong type: body is a list", j(["hello"]), 422),
        BadInput("missing field", j({}), 422),
        BadInput("unknown field", j({"text": "hello", "lang": "en"}), 422),
        BadInput("empty string", j({"text": ""}), 422),
        BadInput("blank string", j({"text": "   \n"}), 422),
        BadInput("empty list", j({"text": []}), 422),
        BadInput(
            f"list over the limit ({max_texts + 1} texts)",
            j({"text": ["hi"] * (max_texts + 1)}),
            422,
        ),
        BadInput(
            f"text over the limit ({max_chars + 1} chars)", j({"text": "a" * (max_chars + 1)}), 422
        ),
        BadInput("lone surrogate", b'{"text": "\\ud800"}', 422),
        BadInput(f"body over the limit (> {max_body} bytes)", j({"text": "b" * max_body}), 413),
        BadInput("unknown path", None, 404, {}, "GET", "/nope"),
        BadInput("wrong method", None, 405, {}, "GET", "/predict"),
        BadInput("missing token", j({"text": "hello"}), 401, needs_token=True),
        BadInput(
            "wrong token",
            j({"text": "hello"}),
            403,
            {"Content-Type": "application/json", "Authorization": "Bearer not-the-token"},
            needs_token=True,
        ),
    ]


def send_bad_inputs(
    url: str, token: str | None = None, cases: Sequence[BadInput] | None = None
) -> list[dict]:
    """Send each bad request to a running server; one row per case: status, error, and whether it was expected.

    Without a token on the server, the token cases are skipped. With one, every other case sends
    the right token, so that it tests what it says.
    """
    import httpx

    rows = []
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
        for c in cases or bad_inputs():
            if c.needs_token and not token:
                continue
            headers = dict(c.headers)
            if token and not c.needs_token:
                headers["Authorization"] = f"Bearer {token}"
            r = client.request(c.method, c.path, content=c.body, headers=headers)
            try:
                body = r.json()
            except ValueError:
                body = {"error": "(not JSON)", "message": r.text[:80]}
            rows.append(
                {
                    "case": c.case,
                    "status": r.status_code,
                    "expected": c.expected_status,
                    "ok": r.status_code == c.expected_status
                    and isinstance(body, dict)
                    and "error" in body,
                    "error": body.get("error"),
                    "message": str(body.get("message", ""))[:90],
                }
            )
    return rows


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


def _run_coroutine(coro):
    """``asyncio.run`` that also works inside Jupyter, whose event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def load_test(
    url: str,
    texts: Sequence[str],
    requests: int = 2000,
    concurrency: int = 16,
    token: str | None = None,
    texts_per_request: int = 1,
    timeout: float = 30.0,
    progress: bool = False,
) -> LoadTestResult:
    """``requests`` POSTs to ``url + "/predict"``, ``concurrency`` in flight at any time.

    Request ``i`` sends ``texts_per_request`` texts starting at ``texts[i % len(texts)]``. An error
    is any non-200 answer or a failed connection. Latency is measured by the client, from
    sending to the full answer, so it includes queueing in the server.
    """
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

    return _run_coroutine(run())


if __name__ == "__main__":
    sys.exit(main())
