"""Load-test the model service: N requests at concurrency C against 127.0.0.1, with and without
micro-batching.

    .venv/bin/python benchmarks/load_test.py                          # 2,000 requests, 16 at a time
    .venv/bin/python benchmarks/load_test.py --requests 5000 --concurrency 32 --backend torch

Starts ``python -m course_lib serve`` as a subprocess on a free loopback port for each setting,
so the client and the server share this machine's cores (the numbers are a floor). Prints
p50/p95/p99 latency, requests/s and errors, and the batching speed-up in requests/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", help="fine-tuned model folder (default: course_lib.finetuned.finetuned_model())"
    )
    p.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--no-compare", action="store_true", help="only the micro-batching server")
    args = p.parse_args(argv)

    import course_lib
    from course_lib.data import load_split
    from course_lib.serving.load_test import load_test
    from course_lib.serving.processes import ServerProcess

    course_lib.setup(verbose=False)
    if args.model:
        model_dir = Path(args.model)
    else:
        from course_lib.finetuned import finetuned_model

        model_dir = finetuned_model()
    texts, _ = load_split("test")
    settings = [("micro-batching", ["--batching", "on"])] + (
        [] if args.no_compare else [("no batching", ["--batching", "off"])]
    )
    results = {}
    for name, extra in settings:
        with ServerProcess(model_dir, backend=args.backend, extra_args=extra) as server:
            load_test(server.url, texts, requests=50, concurrency=4)  # warm up
            results[name] = load_test(
                server.url,
                texts,
                requests=args.requests,
                concurrency=args.concurrency,
                progress=True,
            )
        print(f"{name:>15}: {results[name].summary()}")
        if results[name].errors:
            print("   errors:", results[name].error_samples)
    if len(results) == 2:
        ratio = results["micro-batching"].requests_per_s / results["no batching"].requests_per_s
        print(f"micro-batching serves {ratio:.2f}x the requests/s of no batching")
    return 0 if all(r.errors == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
