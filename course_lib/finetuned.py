"""The course's fine-tuned classifier: lesson 05's recipe run on the course split, saved in
``artifacts/``, reused by the later lessons, and the command that trains it.

    python -m course_lib train [--full] [--out DIR] [--set FIELD=VALUE ...]

``train_and_save`` subsamples the training pool, fine-tunes (``course_lib.train.fine_tune``),
tests and saves. ``finetuned_model()`` returns the folder of the default model, training it
first (a few minutes on a laptop CPU) when it is not there yet. How long the default training is
follows the run profile (``settings.by_profile``).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .artifacts import (
    CUSTOM_MODEL_NAME,
    DEFAULT_MODEL_NAME,
    FULL_MODEL_NAME,
    folder_lock,
    is_complete_model_folder,
    load_classifier,
    model_folder,
    read_training_summary,
    save_classifier,
)
from .metrics import evaluate
from .settings import NOTEBOOKS_DIR, REUSE_MODELS_ENV, env_flag, full_training_requested
from .train import (
    FineTuneConfig,
    SingleProcess,
    TrainResult,
    config_overrides,
    default_config,
    fine_tune,
    full_config,
)

FULL_RUN_RECORD = NOTEBOOKS_DIR / "measurements" / "05_full_setting.json"


def default_folder_for(config: FineTuneConfig) -> Path:
    """Where ``train_and_save`` puts a model: ``artifacts/minilm-tweets`` for the default setting,
    ``artifacts/minilm-tweets-full`` for FULL, ``artifacts/minilm-tweets-custom`` otherwise (so an
    experiment never overwrites the model later lessons use)."""
    if config == default_config():
        return model_folder(DEFAULT_MODEL_NAME)
    if config == full_config():
        return model_folder(FULL_MODEL_NAME)
    return model_folder(CUSTOM_MODEL_NAME)


def _jsonable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "logits"}


def train_and_save(
    config: FineTuneConfig | None = None,
    folder: str | Path | None = None,
    device=None,
    progress: bool = True,
    reuse: bool | None = None,
    ranks: SingleProcess | None = None,
) -> tuple[TrainResult, dict, Path]:
    """The whole recipe on the course split: subsample the pool, fine-tune, test, save.

    Returns ``(result, test_metrics, folder)``; the folder also gets ``training_summary.json``
    (settings, timings, the loss of every step, the validation curve, test metrics). ``config``
    defaults to ``default_config()``.

    ``reuse`` (default: the environment flag ``COURSE_REUSE_MODELS``): when ``folder`` already
    holds a model trained with exactly this ``config``, load it and its recorded history instead
    of training again. Callers that reuse wait for each other (a lock next to the folder), so
    two processes asking for the same model at once train it once.
    """
    from .data import load_split, subsample

    config = config or default_config()
    ranks = ranks or SingleProcess()
    folder = Path(folder) if folder is not None else default_folder_for(config)
    reuse = env_flag(REUSE_MODELS_ENV) if reuse is None else reuse
    reuse = reuse and ranks.world_size == 1  # ranks of one group train together, never reuse
    with folder_lock(folder) if reuse else contextlib.nullcontext():
        if reuse and (result := _reused_result(config, folder)) is not None:
            print(
                f"Reused the model saved in {folder.name} ({REUSE_MODELS_ENV}=1); "
                f"unset it to retrain."
            )
            return result, _recorded_test_metrics(folder) or _test_metrics(result), folder
        texts, labels = load_split("train")
        if config.train_size is not None:
            texts, labels = subsample(texts, labels, config.train_size, seed=config.seed)
        val_texts, val_labels = load_split("validation")
        if config.val_size is not None:
            val_texts, val_labels = subsample(val_texts, val_labels, config.val_size, seed=0)
        result = fine_tune(
            texts, labels, val_texts, val_labels, config, device, progress, ranks=ranks
        )
        if not ranks.is_main:  # under torchrun only rank 0 tests and saves
            return result, {}, folder
        t0 = time.perf_counter()
        test = _test_metrics(result)
        test_seconds = time.perf_counter() - t0
        summary = {
            "config": asdict(config),
            "train_examples": len(texts),
            "steps": len(result.history),
            "train_seconds": round(result.train_seconds, 1),
            "eval_seconds": round(result.eval_seconds, 1),
            "test_seconds": round(test_seconds, 1),
            "threads": torch.get_num_threads(),
            "device": str(next(result.model.parameters()).device),
            "best_validation": result.best,
            "stopped_early": result.stopped_early,
            "evaluations": result.evaluations,
            "history": result.history,
            "test": _jsonable(test),
            # rounded: enough to rank the classes; reuse then needs no second pass over the test
            "test_logits": [[round(float(x), 5) for x in row] for row in test["logits"]],
            "torch": torch.__version__,
            "world_size": ranks.world_size,
        }
        save_classifier(result.model, result.tokenizer, folder, summary)
    return result, test, folder


def _test_metrics(result: TrainResult) -> dict:
    """The trained model's metrics (and logits) on the course's test split (or the stratified
    subsample of ``config.test_size`` tweets)."""
    from .data import load_split, subsample

    texts, labels = load_split("test")
    config = result.config
    if config.test_size is not None:
        texts, labels = subsample(texts, labels, config.test_size, seed=0)
    return evaluate(
        result.model, result.tokenizer, texts, labels, config.eval_batch_size, config.max_length
    )


def _recorded_test_metrics(folder: Path) -> dict | None:
    """The test metrics (with the logits) a saved run recorded, or None when it has no logits."""
    import numpy as np

    summary = read_training_summary(folder)
    if "test_logits" not in summary:
        return None
    return {**summary["test"], "logits": np.asarray(summary["test_logits"], dtype=np.float32)}


def _reused_result(config: FineTuneConfig, folder: Path) -> TrainResult | None:
    """The saved model and its recorded run, if ``folder`` holds one trained with ``config``."""
    if not is_complete_model_folder(folder):
        return None
    try:
        summary = read_training_summary(folder)
    except FileNotFoundError:
        return None
    if summary.get("config") != asdict(config) or "history" not in summary:
        return None
    model, tokenizer = load_classifier(folder)
    return TrainResult(
        model,
        tokenizer,
        config,
        history=summary["history"],
        evaluations=summary["evaluations"],
        best=summary["best_validation"],
        train_seconds=summary["train_seconds"],
        eval_seconds=summary["eval_seconds"],
        stopped_early=summary["stopped_early"],
    )


def finetuned_model(
    train_if_missing: bool = True, full: bool = False, progress: bool = True
) -> Path:
    """Folder of the fine-tuned tweet classifier in ``artifacts/``, training it first if needed.

    ``full=False`` (default): the default setting, ``artifacts/minilm-tweets`` (a few minutes to
    train on a laptop CPU). ``full=True``: the ``COURSE_FULL`` setting,
    ``artifacts/minilm-tweets-full``.
    Load it with ``transformers.pipeline("text-classification", model=finetuned_model())`` or
    ``AutoModelForSequenceClassification.from_pretrained(finetuned_model())``.
    """
    folder = model_folder(FULL_MODEL_NAME if full else DEFAULT_MODEL_NAME)
    if is_complete_model_folder(folder):
        return folder
    if not train_if_missing:
        raise FileNotFoundError(
            f"No fine-tuned model in {folder}. Run lesson 05, or call "
            f"course_lib.finetuned.finetuned_model() to train one (a few minutes)."
        )
    print(
        f"No fine-tuned model in {folder} yet: training one now with the "
        f"{'FULL' if full else 'default'} settings (lesson 05 explains them)."
    )
    config = full_config() if full else default_config()
    _, test, folder = train_and_save(config, folder, progress=progress)
    print(f"Saved to {folder} (test macro-F1 {test['macro_f1']:.3f}).")
    return folder


def recorded_full_run() -> dict:
    """The committed record of one FULL run (``notebooks/measurements/05_full_setting.json``):
    the command, the machine, and ``report``, the JSON that ``python -m course_lib train --full``
    printed."""
    return json.loads(FULL_RUN_RECORD.read_text())


def training_summary(folder: str | Path | None = None) -> dict:
    """The ``training_summary.json`` saved next to a model (settings, timings, test metrics)."""
    folder = folder if folder is not None else finetuned_model(train_if_missing=False)
    return read_training_summary(folder)


def command_line_options(parser):
    """Add the options of a training command to an ``argparse`` parser (``python -m course_lib
    train``, and lesson 08's ``python -m course_lib.distributed train``): ``--full``, ``--out``,
    ``--set FIELD=VALUE``. Returns the parser."""
    parser.add_argument(
        "--full", action="store_true", help="the FULL setting (same as COURSE_FULL=1)"
    )
    parser.add_argument("--out", default=None, help="folder to save into (default: artifacts/...)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a setting"
    )
    return parser


def config_from_args(args) -> FineTuneConfig:
    """The setting the parsed ``command_line_options`` ask for: default or FULL, then each
    ``--set``."""
    config = full_config() if (args.full or full_training_requested()) else default_config()
    return replace(config, **config_overrides(config, args.set))


def run_report(config: FineTuneConfig, folder: Path, wall_seconds: float) -> dict:
    """What a training command prints when it is done: the setting, the folder, the wall time
    and the saved summary."""
    return {
        "setting": "FULL" if config == full_config() else "default",
        "folder": str(folder),
        "wall_seconds": round(wall_seconds, 1),
        **{k: v for k, v in training_summary(folder).items() if k not in ("config", "test_logits")},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib train [--full] [--threads N] [--out DIR] [--set FIELD=VALUE ...]``:
    train, test, save, print the report (JSON). Several processes: lesson 08's
    ``python -m course_lib.distributed train`` under ``torchrun``."""
    import argparse

    from .runtime.environment import setup

    parser = argparse.ArgumentParser(prog="python -m course_lib train", description=main.__doc__)
    command_line_options(parser)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    setup(threads=args.threads)
    config = config_from_args(args)
    t0 = time.perf_counter()
    _, _, folder = train_and_save(config, args.out)
    print(json.dumps(run_report(config, folder, time.perf_counter() - t0), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
