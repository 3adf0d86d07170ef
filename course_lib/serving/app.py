"""The HTTP side: the body-size middleware, the FastAPI app, and its OpenAPI contract.

``/openapi.json`` is put together by ``openapi_contract`` rather than inferred from the
endpoints, so that it says exactly what the server enforces: the request schema is the request
model's (``validation.request_model``: lengths, item counts, no unknown fields), and beside it
the body limit, the bearer token when the server has one (``auth``), and every error status with
its ``{"error", "message"}`` body. ``tests/unit/test_openapi_contract.py`` holds the server to it
with an independent fuzzer.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources

# At module level: FastAPI resolves the endpoint's annotation ``request: Request`` here.
from starlette.requests import Request

from .auth import CHALLENGES, token_dependency
from .predictor import BACKENDS, MicroBatcher, Predictor
from .validation import (
    ERRORS,
    MAX_BODY_BYTES,
    MAX_TEXT_CHARS,
    MAX_TEXTS,
    TOKEN_ENV,
    ApiError,
    decode_json_body,
    error_body,
    error_schema,
    predict_response_schema,
    request_model,
    validate_texts,
)


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


# --------------------------------------------------------------------------- the contract


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    return response | ({"headers": headers} if headers else {})


# RFC 6750 section 3.1: every 401 says how to authenticate, and why a token failed.
_CHALLENGE_HEADER = {
    "required": True,
    "description": 'no token: `Bearer`; a wrong token: `Bearer error="invalid_token"`',
    "schema": {"type": "string", "enum": CHALLENGES},
}


def _error_responses(statuses: list[int]) -> dict:
    """One documented response per status, its body schema listing the codes it can carry."""
    out = {}
    for status in statuses:
        rows = [(code, when) for s, code, when in ERRORS if s == status]
        text = "; ".join(f"`{code}`: {when}" for code, when in rows)
        headers = {"WWW-Authenticate": _CHALLENGE_HEADER} if status == 401 else None
        out[str(status)] = _json(error_schema([code for code, _ in rows]), text, headers)
    return out


def openapi_contract(
    predictor: Predictor,
    version: str,
    token: bool,
    max_texts: int = MAX_TEXTS,
    max_text_chars: int = MAX_TEXT_CHARS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> dict:
    """The OpenAPI 3.1 document of this server, as configured (its limits, labels, token)."""
    errors = sorted({s for s, _, _ in ERRORS} - ({401} if not token else set()))
    limits = {
        "type": "object",
        "properties": {
            name: {"type": "integer", "minimum": 1}
            for name in ("max_texts", "max_text_chars", "max_body_bytes", "max_tokens")
        },
        "required": ["max_texts", "max_text_chars", "max_body_bytes", "max_tokens"],
        "additionalProperties": False,
    }
    model_info = {
        "title": "ModelInfo",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "backend": {"type": "string", "enum": list(BACKENDS)},
            "version": {"type": "string"},
            "fingerprint": {"type": "string"},
            "limits": limits,
            "token_required": {"type": "boolean"},
            "batching": {"type": "boolean"},
            "mean_batch": {"type": ["number", "null"]},
        },
        "required": ["name", "labels", "backend", "version", "fingerprint", "limits"]
        + ["token_required", "batching", "mean_batch"],
        "additionalProperties": False,
    }
    health = {
        "type": "object",
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
        "required": ["status"],
        "additionalProperties": False,
    }
    auth = (
        f"Needs the header `Authorization: Bearer <token>` (this server was started with "
        f"{TOKEN_ENV} set). "
        if token
        else f"No token needed (this server was started without {TOKEN_ENV}). "
    )
    predict = {
        "summary": "Classify one text or a list of texts",
        "description": (
            f"{auth}One prediction per text, in order. A text over {predictor.max_tokens} tokens "
            f"is cut and flagged `truncated`. The body must be JSON (`Content-Type: "
            f"application/json`), UTF-8, at most {max_body_bytes} bytes (`x-max-body-bytes`; a "
            f"compactly encoded valid request always fits)."
        ),
        "operationId": "predict",
        "requestBody": {
            "required": True,
            "x-max-body-bytes": max_body_bytes,
            "content": {
                "application/json": {
                    "schema": request_model(max_texts, max_text_chars).model_json_schema()
                }
            },
        },
        "responses": {
            "200": _json(
                predict_response_schema(predictor.labels, predictor.max_tokens), "predictions"
            ),
            **_error_responses(errors),
        },
    }
    if token:
        predict["security"] = [{"bearerAuth": []}]
    internal = _error_responses([500])
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "course_lib sentiment service",
            "version": version,
            "description": (
                f"Tweet sentiment from a fine-tuned classifier ({predictor.name}, backend "
                f"{predictor.backend}). Every error is JSON: "
                '`{"error": code, "message": text}`, with the codes listed per status.'
            ),
        },
        "paths": {
            "/predict": {"post": predict},
            "/health": {
                "get": {
                    "summary": "Is the server up, with its model loaded?",
                    "operationId": "health",
                    "responses": {"200": _json(health, "the server is up"), **internal},
                }
            },
            "/model": {
                "get": {
                    "summary": "Which model answers, its labels and backend, and the limits",
                    "operationId": "model_info",
                    "responses": {"200": _json(model_info, "model and limits"), **internal},
                }
            },
        },
    }
    if token:
        spec["components"] = {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        }
    return spec


# --------------------------------------------------------------------------- the app


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
    from fastapi import Depends, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..settings import VERSION as __version__

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
    )
    contract = openapi_contract(
        predictor, __version__, bool(token), max_texts, max_text_chars, max_body_bytes
    )
    app.openapi = lambda: contract  # the written-out contract, not FastAPI's inferred one

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

    # The body is read and decoded here, not by FastAPI, so that bytes that are not UTF-8 or not
    # JSON keep their 400 codes; the request model then checks the decoded value.
    @app.post("/predict", dependencies=[Depends(token_dependency(token))])
    async def predict(request: Request):
        """Classify one text or a list of texts; one prediction per text, in order."""
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the body as JSON with 'Content-Type: application/json' "
                f"(got {content_type!r:.60})",
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
        return {"status": "ok"}

    @app.get("/model")
    async def model_info():
        batcher = state.get("batcher") if batching else None
        sizes = batcher.batch_sizes if batcher else []
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
                "max_tokens": predictor.max_tokens,
            },
            "token_required": bool(token),
            "batching": batching,
            "mean_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
        }

    page_headers = {
        "Content-Security-Policy": PAGE_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    @app.get("/", include_in_schema=False)
    async def demo_page():
        return HTMLResponse(static_page("index.html"), headers=page_headers)

    @app.get("/docs", include_in_schema=False)
    async def docs_page():
        return HTMLResponse(static_page("docs.html"), headers=page_headers)

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app
