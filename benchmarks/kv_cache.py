"""Speed-up of generation with a KV cache against recomputing the whole prefix every step.

    .venv/bin/python benchmarks/kv_cache.py [--model artifacts/gpt-tweets] [--lengths 16 32 64 128]

Both ways generate exactly N tokens greedily from the same 4-token prompt, in the same run,
alternating; each time is the best of ``--repeats``. The ratio is (no cache) / (cache): above 1
means the cache is faster. The model is lesson 09's trained decoder when ``--model`` names a
saved folder, otherwise a freshly initialised one of the same size (speed does not depend on
the weights). Tokens are checked equal both ways.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    import torch

    from course_lib import gpt, gpt_hf, gpt_train
    from course_lib.generation import generate, kv_cache_speedups

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    folder = args.model or gpt_train.default_folder()
    if (folder / "config.json").is_file():
        model, _ = gpt_hf.load_pretrained(folder)
        what = f"trained model {folder.name}"
    else:
        model = gpt.GPT(gpt_train.default_gpt_config().model_config()).eval()
        what = "untrained model of the default size"
    prompt = torch.full((1, 4), model.config.bos_token_id, dtype=torch.long)
    n = max(args.lengths)
    same = torch.equal(
        generate(model, prompt, n, temperature=0, eos_token_id=-1, use_cache=True),
        generate(model, prompt, n, temperature=0, eos_token_id=-1, use_cache=False),
    )
    print(f"{what}, {model.num_parameters():,} parameters, torch {torch.__version__},")
    print(f"{args.threads} threads on {platform.machine()} ({os.cpu_count()} CPUs visible)")
    print(f"same tokens with and without the cache ({n} tokens): {same}")
    print(f"{'tokens':>7} {'no cache (s)':>13} {'cache (s)':>10} {'ratio':>7}")
    for r in kv_cache_speedups(model, args.lengths, repeats=args.repeats):
        print(
            f"{r['tokens']:>7} {r['no_cache_s']:>13.3f} {r['cache_s']:>10.3f} {r['speedup']:>6.1f}x"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
