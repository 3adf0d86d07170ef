"""Two choices of lesson 05, measured: the default learning rate, and our loop against Trainer.

    .venv/bin/python benchmarks/finetune_choices.py lr [--lrs 5e-5 1e-4 1.5e-4 3e-4]
    .venv/bin/python benchmarks/finetune_choices.py trainer [--seeds 0 1 2] [--trainer-only]

``lr``: the default setting (``course_lib.train.default_config()``: 8,000 tweets, one epoch,
250 optimizer steps, embeddings and the lowest 2 layers frozen) trained once per learning rate,
everything else unchanged. It prints each run's best validation macro-F1 (what a choice may be
based on) and its test macro-F1, and its training time as a ratio to the first run of the same
command (so a busy machine inflates no ratio much).

``trainer``: for each seed, our loop (``course_lib.train.fine_tune``) and ``transformers.Trainer``
(``course_lib.hf_trainer.fine_tune_with_trainer``) on the same stratified 8,000 tweets (drawn with
that seed) with the same settings, scored on the same test split; Trainer's training time is
printed as a ratio to our loop's, measured in the same run (``--trainer-only`` skips our loop,
and so the ratio).

Each training run takes about 90 s on 2 idle CPU cores. ``--json FILE`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _data(seed: int):
    from course_lib.data import load_split, subsample
    from course_lib.train import default_config

    texts, labels = load_split("train")
    texts, labels = subsample(texts, labels, default_config().train_size, seed=seed)
    return (texts, labels), load_split("validation"), load_split("test")


def _test_scores(model, tokenizer, config, test) -> dict:
    from course_lib.metrics import evaluate

    m = evaluate(model, tokenizer, *test, config.eval_batch_size, config.max_length)
    return {"test_accuracy": round(m["accuracy"], 4), "test_macro_f1": round(m["macro_f1"], 4)}


def learning_rates(lrs: list[float], seed: int = 0) -> list[dict]:
    from course_lib.train import default_config, fine_tune

    (texts, labels), val, test = _data(seed)
    rows = []
    for lr in lrs:
        config = default_config(lr=lr, seed=seed)
        result = fine_tune(texts, labels, *val, config, progress=False)
        rows.append(
            {
                "lr": lr,
                "best_val_macro_f1": round(result.best["val_macro_f1"], 4),
                "best_at_step": result.best["step"],
                "steps": len(result.history),
                **_test_scores(result.model, result.tokenizer, config, test),
                "train_seconds": round(result.train_seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def trainer_against_loop(seeds: list[int], loop: bool = True) -> list[dict]:
    from course_lib.hf_trainer import fine_tune_with_trainer
    from course_lib.train import default_config, fine_tune

    rows = []
    for seed in seeds:
        config = default_config(seed=seed)
        (texts, labels), val, test = _data(seed)
        row = {"seed": seed}
        if loop:
            ours = fine_tune(texts, labels, *val, config, progress=False)
            row["loop"] = {
                **_test_scores(ours.model, ours.tokenizer, config, test),
                "train_seconds": round(ours.train_seconds, 1),
            }
        hf = fine_tune_with_trainer(texts, labels, config, progress=False)
        row["trainer"] = {
            **_test_scores(hf["model"], hf["tokenizer"], config, test),
            "train_seconds": round(hf["train_seconds"], 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=["lr", "trainer"])
    p.add_argument("--lrs", type=float, nargs="+", default=[5e-5, 1e-4, 1.5e-4, 3e-4])
    p.add_argument("--seed", type=int, default=0, help="seed of the lr runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of trainer")
    p.add_argument(
        "--trainer-only", action="store_true", help="trainer: skip our loop (no time ratio)"
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    import course_lib

    course_lib.setup(threads=args.threads)
    if args.what == "lr":
        rows = learning_rates(args.lrs, args.seed)
        first = rows[0]["train_seconds"]
        print(f"{'lr':>8} {'best val F1':>12} {'test F1':>8} {'test acc':>9} {'time':>6}")
        for r in rows:
            print(
                f"{r['lr']:>8.1e} {r['best_val_macro_f1']:>12.3f} {r['test_macro_f1']:>8.3f} "
                f"{r['test_accuracy']:>9.3f} {r['train_seconds'] / first:>5.2f}x"
            )
        best = max(rows, key=lambda r: r["best_val_macro_f1"])
        print(f"best on validation: lr {best['lr']:g}")
    else:
        rows = trainer_against_loop(args.seeds, loop=not args.trainer_only)
        print(f"{'seed':>4} {'loop F1':>8} {'Trainer F1':>11} {'Trainer time / loop time':>25}")
        for r in rows:
            loop = r.get("loop")
            ratio = r["trainer"]["train_seconds"] / loop["train_seconds"] if loop else None
            print(
                f"{r['seed']:>4} {loop['test_macro_f1'] if loop else float('nan'):>8.3f} "
                f"{r['trainer']['test_macro_f1']:>11.3f} "
                + (f"{ratio:>24.2f}x" if ratio else f"{'(loop not run)':>25}")
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
