"""Fine-tuning a pretrained BERT for tweet sentiment: a readable training loop, metrics, saving.

The loop, in order (lesson 05 walks through it):

1. tokenise once, without padding (``encode``);
2. cut the data into **length-bucketed** batches (``length_bucketed_batches``): tweets of similar
   length share a batch, so dynamic padding (``pad_batch``) adds few ``[PAD]`` tokens;
3. optionally **freeze** the embeddings and the lowest encoder layers (``freeze_lower_layers``);
4. **AdamW** with **linear warm-up then linear decay** (``warmup_linear_factor``); every step is
   ``training_step``: the loss (labels given), ``backward()``, **gradient clipping**, the
   optimizer step, the schedule step, the gradients cleared (``update_weights``);
5. evaluate on the validation set (macro-F1), keep the best weights, **stop early** when it stops
   improving;
6. save with ``save_pretrained`` (safetensors) plus the tokenizer and the label names
   (``save_classifier``), written to a temporary folder and renamed, so a crash never leaves a
   half-written model behind.

A run's figures are in ``course_lib.learning_curves``; the lesson's exercise checkers (the
schedule, the training step) in ``course_lib.train_checks``.

``finetuned_model()`` returns the folder of the default fine-tuned classifier in ``artifacts/``,
training it first (a few minutes on a laptop CPU) when it is not there yet.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import distributed
from .artifacts import (
    CUSTOM_MODEL_NAME,
    DEFAULT_MODEL_NAME,
    FULL_MODEL_NAME,
    is_complete_model_folder,
    load_classifier,
    model_folder,
    read_training_summary,
    save_classifier,
)
from .batching import encode, pad_batch
from .data import ID2LABEL, LABEL2ID, LABELS
from .metrics import evaluate
from .settings import MAX_TOKENS, NOTEBOOKS_DIR, REUSE_MODELS_ENV, env_flag

FULL_RUN_RECORD = NOTEBOOKS_DIR / "measurements" / "05_full_setting.json"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Every knob of the fine-tune. The defaults are the course's CI setting: 250 optimizer steps,
    measured at 90 s of training on 2 idle CPU cores (test macro-F1 0.781, lesson 05);
    ``full_config()`` is the longer one."""

    model: str = "minilm"  # see course_lib.models.resolve_model
    train_size: int | None = 8000  # stratified subsample of the training pool; None = all of it
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1.5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # fraction of all steps spent warming up
    grad_clip: float = 1.0  # max global L2 norm of the gradient
    freeze_embeddings: bool = True
    freeze_layers: int = 2  # lowest encoder layers kept frozen
    max_length: int = MAX_TOKENS  # tokens per tweet; longer ones are cut (rare: lesson 05)
    bucket_batches: int = 50  # batches per length-sorted bucket
    evals_per_epoch: int = 2  # validation passes per epoch (points on the learning curve)
    patience: int = 2  # evaluations without a better validation macro-F1
    eval_batch_size: int = 128
    seed: int = 0
    grad_accumulation: int = 1  # parts per batch, each backward()ed before one optimizer step


def default_config(**overrides) -> TrainConfig:
    """The default (CI) setting, with any field overridden."""
    return replace(TrainConfig(), **overrides)


def full_config(**overrides) -> TrainConfig:
    """The FULL setting (``COURSE_FULL=1``): the whole training pool, nothing frozen, up to 3
    epochs with early stopping. Measured: 2,313 steps in 1,138 s on 2 idle CPU cores, test macro-F1
    0.808 (``recorded_full_run()``). Not measured on a GPU."""
    return replace(
        TrainConfig(
            train_size=None,
            epochs=3,
            lr=5e-5,
            freeze_embeddings=False,
            freeze_layers=0,
            evals_per_epoch=2,
            patience=2,
        ),
        **overrides,
    )


def full_requested() -> bool:
    """True when the environment variable ``COURSE_FULL`` is on (see ``settings.env_flag``)."""
    return env_flag("COURSE_FULL")


def config_from_env(**overrides) -> TrainConfig:
    """``full_config()`` when ``COURSE_FULL=1``, else ``default_config()``."""
    return full_config(**overrides) if full_requested() else default_config(**overrides)


# --------------------------------------------------------------------------------------------
# Model, freezing, schedule
# --------------------------------------------------------------------------------------------
def load_pretrained_classifier(model: str = "minilm", num_labels: int = len(LABELS)):
    """``(model, tokenizer)``: the pretrained encoder with a new, randomly initialised 3-way
    head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .models import resolve_model

    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    clf = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=num_labels, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    return clf, tokenizer


def freeze_lower_layers(model, embeddings: bool = True, n_layers: int = 0) -> dict:
    """Stop gradients into the embeddings and the lowest ``n_layers`` encoder layers.

    Lower layers hold general language features that a few thousand tweets cannot improve much;
    freezing them saves their backward pass and optimizer state. Returns parameter counts.
    """
    base = model.base_model
    layers = base.encoder.layer
    if not 0 <= n_layers <= len(layers):
        raise ValueError(f"n_layers must be in 0..{len(layers)} for this model, got {n_layers}")
    for p in model.parameters():
        p.requires_grad_(True)
    frozen = list(base.embeddings.parameters()) if embeddings else []
    for layer in layers[:n_layers]:
        frozen += list(layer.parameters())
    for p in frozen:
        p.requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def warmup_linear_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    r"""Learning-rate multiplier at optimizer step ``step`` (0-based).

    .. math:: f(s) = \begin{cases} s / w & s < w \\ \max(0, (T - s) / (T - w)) & s \ge w \end{cases}

    with ``w = warmup_steps`` and ``T = total_steps``: a linear ramp from 0 to 1, then a linear
    decay to 0 at the last step. (The same curve as
    ``transformers.get_linear_schedule_with_warmup``.)
    """
    if total_steps <= 0 or warmup_steps < 0:
        raise ValueError(
            f"need total_steps > 0 and warmup_steps >= 0, got {total_steps}, {warmup_steps}"
        )
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim == 1 else decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
    )


# --------------------------------------------------------------------------------------------
# One training step, and the loop
# --------------------------------------------------------------------------------------------
def update_weights(model, optimizer, scheduler, grad_clip: float) -> float:
    """The end of every training step, once ``backward()`` has filled ``.grad``: clip the gradient
    to a global L2 norm of ``grad_clip``, take the optimizer step, advance the learning-rate
    schedule, clear the gradients. Returns the gradient's norm before clipping."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


def training_step(model, batch: dict, optimizer, scheduler, grad_clip: float = 1.0) -> float:
    """One optimizer step on one batch (the reference for lesson 05's exercise).

    ``batch`` holds ``input_ids``, ``attention_mask`` and ``labels`` (``pad_batch``). Forward with
    the labels, so the model returns the mean cross-entropy; ``backward()``; then
    ``update_weights`` (clip, step, schedule, clear). Returns the batch's loss as a float.

    ``fine_tune`` does exactly this for every batch. When a batch is cut into parts (gradient
    accumulation, or several processes under ``torchrun``: lesson 08) it runs forward and
    backward once per part, each loss weighted by the part's share, before the one
    ``update_weights``.
    """
    loss = model(**batch).loss
    loss.backward()
    update_weights(model, optimizer, scheduler, grad_clip)
    return loss.item()


@dataclass
class TrainResult:
    model: object
    tokenizer: object
    config: TrainConfig
    history: list[dict] = field(default_factory=list)  # one row per optimizer step
    evaluations: list[dict] = field(default_factory=list)  # one row per validation pass
    best: dict = field(default_factory=dict)  # the evaluation whose weights were kept
    train_seconds: float = 0.0  # optimizer steps only
    eval_seconds: float = 0.0  # validation passes
    stopped_early: bool = False


def fine_tune(
    train_texts: list[str],
    train_labels: list[int],
    val_texts: list[str],
    val_labels: list[int],
    config: TrainConfig = TrainConfig(),
    device=None,
    progress: bool = True,
    max_steps: int | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on the given data; return the model with its best validation
    weights.

    ``max_steps`` cuts training short (for tests). Seeds are fixed by ``config.seed``.
    """
    from tqdm.auto import tqdm

    if len(train_texts) != len(train_labels) or len(val_texts) != len(val_labels):
        raise ValueError(
            f"texts and labels differ in length: train {len(train_texts)} vs {len(train_labels)}, "
            f"validation {len(val_texts)} vs {len(val_labels)}"
        )
    rank = distributed.rank_info()  # rank 0 of 1, unless started by torchrun (lesson 08)
    device = torch.device(device) if device is not None else distributed.rank_device()
    torch.manual_seed(config.seed)  # the new head's initial weights and dropout
    model, tokenizer = load_pretrained_classifier(config.model)
    freeze_lower_layers(model, config.freeze_embeddings, config.freeze_layers)
    model.to(device).train()
    ddp_model = distributed.wrap_model(model)  # the model itself in one process

    ids = encode(tokenizer, train_texts, config.max_length)
    lengths = [len(s) for s in ids]
    steps_per_epoch = math.ceil(len(ids) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    warmup_steps = round(config.warmup_ratio * total_steps)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_linear_factor(s, warmup_steps, total_steps)
    )
    eval_points = {
        round(steps_per_epoch * k / config.evals_per_epoch)
        for k in range(1, config.evals_per_epoch + 1)
    }

    result = TrainResult(model, tokenizer, config)
    best_f1, best_state, since_best, step = -1.0, None, 0, 0
    bar = tqdm(total=total_steps, desc="fine-tuning", disable=not (progress and rank.is_main))
    for epoch in range(config.epochs):
        # length-bucketed batches of config.batch_size; each rank gets its parts of every batch
        batches = distributed.rank_batches(
            lengths,
            config.batch_size,
            rank.rank,
            rank.world_size,
            config.grad_accumulation,
            seed=config.seed + epoch,
            bucket_batches=config.bucket_batches,
        )
        for i, parts in enumerate(batches, start=1):
            t0 = time.perf_counter()
            loss, tokens = 0.0, 0
            for k, (b, weight) in enumerate(parts, start=1):
                batch = pad_batch(
                    [ids[j] for j in b], [train_labels[j] for j in b], tokenizer.pad_token_id
                )
                batch = {key: v.to(device) for key, v in batch.items()}
                with distributed.gradient_sync(ddp_model, sync=k == len(parts)):
                    # cross-entropy (we passed labels), weighted by this part's share of the batch
                    part_loss = ddp_model(**batch).loss * weight
                    part_loss.backward()
                loss, tokens = loss + part_loss.detach(), tokens + int(batch["input_ids"].numel())
            loss = distributed.average(loss)  # the mean loss over the whole batch, on every rank
            grad_norm = update_weights(model, optimizer, scheduler, config.grad_clip)
            step += 1
            result.train_seconds += time.perf_counter() - t0
            result.history.append(
                {
                    "step": step,
                    "epoch": epoch + (i / len(batches)),
                    "loss": loss.item(),
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "tokens": tokens,  # this rank's
                }
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            last = step >= total_steps
            if (i in eval_points or last) and rank.is_main:  # only rank 0 evaluates
                t1 = time.perf_counter()
                ev = evaluate(
                    model,
                    tokenizer,
                    val_texts,
                    val_labels,
                    config.eval_batch_size,
                    config.max_length,
                    device,
                )
                model.train()
                result.eval_seconds += time.perf_counter() - t1
                row = {
                    "step": step,
                    "epoch": epoch + i / len(batches),
                    "val_loss": ev["loss"],
                    "val_accuracy": ev["accuracy"],
                    "val_macro_f1": ev["macro_f1"],
                }
                result.evaluations.append(row)
                bar.set_postfix(loss=f"{loss.item():.3f}", val_f1=f"{ev['macro_f1']:.3f}")
                if ev["macro_f1"] > best_f1:
                    best_f1, since_best, result.best = ev["macro_f1"], 0, row
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                    result.stopped_early = since_best >= config.patience
            if i in eval_points or last:  # every rank stops when rank 0 says so
                result.stopped_early = distributed.from_main(result.stopped_early)
            if result.stopped_early or last:
                break
        if result.stopped_early or step >= total_steps:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


# --------------------------------------------------------------------------------------------
# The cached default model (saving and loading are in course_lib.artifacts)
# --------------------------------------------------------------------------------------------
def default_folder_for(config: TrainConfig) -> Path:
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
    config: TrainConfig = TrainConfig(),
    folder: str | Path | None = None,
    device=None,
    progress: bool = True,
    reuse: bool | None = None,
) -> tuple[TrainResult, dict, Path]:
    """The whole recipe on the course split: subsample the pool, fine-tune, test, save.

    Returns ``(result, test_metrics, folder)``; the folder also gets ``training_summary.json``
    (settings, timings, the loss of every step, the validation curve, test metrics).

    ``reuse`` (default: the environment flag ``COURSE_REUSE_MODELS``): when ``folder`` already
    holds a model trained with exactly this ``config``, load it and its recorded history instead
    of training again. The browser tests use it right after the notebook tests trained the model.
    """
    from .data import load_split, subsample

    if folder is None:
        folder = default_folder_for(config)
    folder = Path(folder)
    reuse = env_flag(REUSE_MODELS_ENV) if reuse is None else reuse
    if reuse and (result := _reused_result(config, folder)) is not None:
        print(
            f"Reused the model saved in {folder.name} ({REUSE_MODELS_ENV}=1); unset it to retrain."
        )
        return result, _test_metrics(result), folder
    texts, labels = load_split("train")
    if config.train_size is not None:
        texts, labels = subsample(texts, labels, config.train_size, seed=config.seed)
    val_texts, val_labels = load_split("validation")
    result = fine_tune(
        texts, labels, val_texts, val_labels, config, device=device, progress=progress
    )
    if not distributed.is_main():  # under torchrun only rank 0 tests and saves
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
        "torch": torch.__version__,
        "world_size": distributed.rank_info().world_size,
    }
    save_classifier(result.model, result.tokenizer, folder, summary)
    return result, test, folder


def _test_metrics(result: TrainResult) -> dict:
    """The trained model's metrics (and logits) on the course's test split."""
    from .data import load_split

    texts, labels = load_split("test")
    config = result.config
    return evaluate(
        result.model, result.tokenizer, texts, labels, config.eval_batch_size, config.max_length
    )


def _reused_result(config: TrainConfig, folder: Path) -> TrainResult | None:
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
            f"course_lib.train.finetuned_model() to train one (a few minutes)."
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
    the command, the machine, and ``report``, the JSON that ``python -m course_lib.train --full``
    printed."""
    return json.loads(FULL_RUN_RECORD.read_text())


def training_summary(folder: str | Path | None = None) -> dict:
    """The ``training_summary.json`` saved next to a model (settings, timings, test metrics)."""
    folder = folder if folder is not None else finetuned_model(train_if_missing=False)
    return read_training_summary(folder)


def config_overrides(config: TrainConfig, pairs: list[str]) -> dict:
    """``["batch_size=16", "model=minilm"]`` -> ``{"batch_size": 16, "model": "minilm"}``, each
    value converted to the type of the field's current value (``none`` gives None)."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not hasattr(config, name):
            raise ValueError(f"--set expects FIELD=VALUE with a TrainConfig field, got {pair!r}")
        current = getattr(config, name)
        if text.lower() == "none":
            out[name] = None
        elif isinstance(current, bool):
            out[name] = text.lower() in ("1", "true", "yes")
        else:
            out[name] = type(current)(text) if current is not None else int(text)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.train [--full] [--trainer] [--threads N] [--set FIELD=VALUE ...]``:
    train, test, save, print timings. Also runs under ``torchrun --nproc-per-node=N``
    (lesson 08)."""
    import argparse

    from .runtime.environment import setup

    parser = argparse.ArgumentParser(prog="python -m course_lib.train", description=main.__doc__)
    parser.add_argument(
        "--full", action="store_true", help="the FULL setting (same as COURSE_FULL=1)"
    )
    parser.add_argument(
        "--trainer",
        action="store_true",
        help="also run the same recipe with transformers.Trainer and compare",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="folder to save into (default: artifacts/...)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a setting"
    )
    args = parser.parse_args(argv)
    setup(threads=args.threads or distributed.threads_per_rank(), verbose=distributed.is_main())
    config = full_config() if (args.full or full_requested()) else default_config()
    config = replace(config, **config_overrides(config, args.set))
    t0 = time.perf_counter()
    with distributed.process_group():  # a no-op without torchrun
        result, test, folder = train_and_save(config, args.out)
    if not distributed.is_main():
        return 0
    report = {
        "setting": "FULL" if config == full_config() else "default",
        "folder": str(folder),
        "wall_seconds": round(time.perf_counter() - t0, 1),
        **{k: v for k, v in training_summary(folder).items() if k not in ("config",)},
    }
    if args.trainer:
        from .data import load_split, subsample

        texts, labels = load_split("train")
        if config.train_size is not None:
            texts, labels = subsample(texts, labels, config.train_size, seed=config.seed)
        from .hf_trainer import fine_tune_with_trainer

        hf = fine_tune_with_trainer(texts, labels, config)
        test_texts, test_labels = load_split("test")
        hf_test = evaluate(
            hf["model"], hf["tokenizer"], test_texts, test_labels, config.eval_batch_size
        )
        report["trainer"] = {
            "train_seconds": round(hf["train_seconds"], 1),
            "test": _jsonable(hf_test),
        }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
