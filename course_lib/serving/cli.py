"""``python -m course_lib serve``: parse the options, load the model, run uvicorn."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from ..runtime.offline import is_loopback
from .predictor import BACKENDS
from .validation import TOKEN_ENV

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning to print when ``host`` is reachable from other machines and no token is set."""
    if is_loopback(host) or token:
        return None
    bar = "!" * 78
    return (
        f"{bar}\n!! WARNING: serving on {host} WITHOUT a token. Anyone who can reach this machine\n"
        f"!! can use the model. Set {TOKEN_ENV}=<a long random string> to require a token,\n"
        f"!! or bind 127.0.0.1 (the default) to keep it on this machine.\n{bar}"
    )


def cleartext_token_warning(host: str, token: str | None, tls: bool) -> str | None:
    """The warning to print when a token guards a server that other machines reach over plain
    HTTP: every request then carries the token in clear text, readable by anyone who can see the
    network's traffic (an open or shared venue Wi-Fi)."""
    if is_loopback(host) or not token or tls:
        return None
    return (
        f"NOTE: serving on {host} over plain HTTP. The token travels in clear text with every\n"
        f"request: anyone who can see this network's traffic can read it and reuse it. Give the\n"
        f"server a certificate (--ssl-certfile and --ssl-keyfile) to serve HTTPS instead."
    )


def tls_files(certfile: str | None, keyfile: str | None) -> tuple[str, str] | None:
    """``(certfile, keyfile)`` for HTTPS, None for plain HTTP; ``ValueError`` naming what is wrong
    when only one is given or a file is missing."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ValueError(
            "--ssl-certfile and --ssl-keyfile go together: give the certificate (PEM) and its "
            "private key (PEM), or neither for plain HTTP"
        )
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not os.path.isfile(path):
            raise ValueError(f"{option} {path}: no such file (expected a PEM file)")
    return certfile, keyfile


def exit_when_parent_dies(interval: float = 0.5) -> None:
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
    """``--batching auto|on|off`` -> on or off; auto is on for torch, off for onnx.

    Micro-batching pays when one model call has a large fixed cost: PyTorch eager spends
    milliseconds in Python per call. ONNX Runtime int8 has almost no fixed cost per call, and a
    batch is padded to its longest text, so there batching buys little. Lesson 07's load test
    and ``benchmarks/load_test.py`` measure both.
    """
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
        help="micro-batch concurrent requests (auto: on for torch, off for onnx)",
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
    p.add_argument(
        "--ssl-certfile",
        metavar="PEM",
        help="serve HTTPS with this certificate (with --ssl-keyfile); uvicorn's option",
    )
    p.add_argument("--ssl-keyfile", metavar="PEM", help="the certificate's private key")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the server with the options in ``argv`` (``sys.argv[1:]`` when None); exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from ..runtime.environment import quiet_libraries, set_offline

    set_offline()
    quiet_libraries()
    if args.exit_with_parent:
        exit_when_parent_dies()
    if not 0 <= args.port <= 65535:
        print(f"--port must be in 0..65535, got {args.port}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    try:
        tls = tls_files(args.ssl_certfile, args.ssl_keyfile)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    token = os.environ.get(TOKEN_ENV) or None
    for warning in (
        exposure_warning(args.host, token),
        cleartext_token_warning(args.host, token, tls is not None),
    ):
        if warning:
            print(warning, file=sys.stderr, flush=True)
    if args.model is None:
        from ..artifacts import is_complete_model_folder, model_folder

        args.model = model_folder()
        if not is_complete_model_folder(args.model):
            print(
                f"no --model given and no fine-tuned model in {args.model}. Run lesson 05 first "
                f"(or python -m course_lib train), or pass --model FOLDER.",
                file=sys.stderr,
            )
            return 2
    batching = resolve_batching(args.batching, args.backend)
    from .app import create_app
    from .predictor import load_predictor

    try:
        predictor = load_predictor(args.model, args.backend, args.threads)
    except (ValueError, OSError) as exc:
        print(f"cannot load the model: {exc}", file=sys.stderr)
        return 2
    app = create_app(predictor, token=token, batching=batching, max_wait_ms=args.max_wait_ms)
    import uvicorn

    scheme = "https" if tls else "http"
    print(
        f"course_lib serve: {scheme}://{args.host}:{args.port}/ (model {predictor.name}, backend "
        f"{predictor.backend}, token {'required' if token else 'off'}, batching "
        f"{'on' if batching else 'off'}, {args.threads} inference thread(s), texts cut at "
        f"{predictor.max_tokens} tokens); docs at /docs. Ctrl+C stops it.",
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
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
