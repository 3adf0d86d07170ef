"""Serve the fine-tuned classifier over HTTP (FastAPI + uvicorn), safe by default, and talk to it.

    python -m course_lib serve --model PATH [--backend onnx|torch] [--host 127.0.0.1] [--port N]
                               [--ssl-certfile CERT.pem --ssl-keyfile KEY.pem]   # HTTPS

Endpoints
---------
- ``POST /predict``  body ``{"text": "one tweet"}`` or ``{"text": ["a", "list"]}``; answers
  ``{"predictions": [{"label", "scores": {label: probability}, "truncated"}], "model", "backend"}``,
  one prediction per text, in order (a list even for a single text).
- ``GET /health``    ``{"status": "ok"}`` once the model is loaded.
- ``GET /model``     name, labels, backend, version, and the input limits.
- ``GET /openapi.json`` the exact contract (limits, fields, auth, every error status);
  ``GET /docs`` renders it with a self-contained page (FastAPI's default one loads its code from
  a CDN, which does not work offline).
- ``GET /``          a demo page: type a text, see the class probabilities as bars. Inline CSS
  and JavaScript only; its Content-Security-Policy forbids loading anything from elsewhere.

Safety defaults: binds ``127.0.0.1``; with ``COURSE_API_TOKEN`` set, ``POST /predict`` needs
``Authorization: Bearer <token>`` (401 without it or with a wrong one, RFC 6750); every bad
input gets a 4xx ``{"error", "message"}`` answer (the table is ``validation.ERRORS``), never a
500, and the server carries on. A text over 1,000 characters is refused; one within that limit
but over the model's token limit (the ``max_length`` it was trained with) is cut, and its
prediction says ``"truncated": true``.

Modules, one concern each:

- ``validation``: limits, the request model (Pydantic) and its checks, the errors, the schemas;
- ``auth``: the bearer token (FastAPI's ``HTTPBearer``, a constant-time compare, RFC 6750);
- ``predictor``: the model behind the service, and the micro-batcher;
- ``app``: the body-size middleware, the FastAPI app, the OpenAPI contract;
- ``cli``: ``python -m course_lib serve``;
- ``processes``: starting and stopping server processes (also JupyterLab in the browser tests);
- ``bad_requests``: the catalogue of bad requests, and a client that sends them;
- ``load_test``: the closed-loop load test, its latency figure, Little's law;
- ``api_client``: a client that checks its requests and the answers against ``/openapi.json``.
"""

import importlib

# ``load_test`` names both a module and its function: importing the module anywhere would bind
# the package attribute to the module, so the function is bound here, once and for all.
from .load_test import load_test as load_test

# What the package offers, by the module that holds it. Loaded on first use (PEP 562), so that a
# process that only starts or stops servers (``processes``) does not import torch and the app.
_EXPORTS = {
    "api_client": ("ContractError", "ServiceClient"),
    "app": ("BodySizeLimit", "create_app", "openapi_contract", "static_page"),
    "auth": ("check_token",),
    "bad_requests": ("BadInput", "bad_inputs", "send_bad_inputs"),
    "cli": (
        "DEFAULT_HOST",
        "DEFAULT_PORT",
        "build_parser",
        "cleartext_token_warning",
        "exposure_warning",
        "main",
        "resolve_batching",
        "tls_files",
    ),
    "load_test": (
        "LoadTestResult",
        "check_mean_latency",
        "default_requests",
        "littles_law_latency_ms",
        "load_test",
        "plot_latency_histograms",
    ),
    "predictor": ("BACKENDS", "MicroBatcher", "Predictor", "load_predictor", "trained_max_tokens"),
    "processes": ("ChildProcess", "ServerProcess", "free_port"),
    "validation": (
        "ERRORS",
        "MAX_BODY_BYTES",
        "MAX_TEXTS",
        "MAX_TEXT_CHARS",
        "TOKEN_ENV",
        "ApiError",
        "check_request_texts",
        "decode_json_body",
        "error_body",
        "request_model",
        "validate_texts",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
