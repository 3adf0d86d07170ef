"""Fine-tuning a pretrained BERT for tweet sentiment: a readable training loop, metrics, saving.

The loop, in order (lesson 05 walks through it):

1. tokenise once, without padding (``encode``);
2. cut the data into **length-bucketed** batches (``length_bucketed_batches``): tweets of similar
   length share a batch, so dynamic padding (``pad_batch``) adds few ``[PAD]`` tokens;
3. optionally **freeze** the embeddings and the lowest encoder layers (``freeze_lower_layers``);
4. **AdamW** with **linear warm-up then linear decay** (``schedules.warmup_linear_factor``);
   every step is ``training_step``: the loss (labels given), ``backward()``, **gradient
   clipping**, the optimizer step, the schedule step, the gradients cleared
   (``update_weights``);
5. evaluate on the validation set (macro-F1), keep the best weights, **stop early** when it stops
   improving;
6. save with ``save_pretrained`` (safetensors) plus the tokenizer and the label names
   (``artifacts.save_classifier``), written to a temporary folder and renamed, so a crash never
   leaves a half-written model behind (``course_lib.finetuned`` runs the whole recipe).

A run's figures are in ``course_lib.learning_curves``; the lesson's exercise checkers (the
schedule, the training step) in ``course_lib.train_checks``. The loop runs in one process here;
``fine_tune`` takes a ``ranks`` object that lesson 08 (``course_lib.distributed.DDPRanks``)
replaces to run the very same loop on several processes under ``torchrun``.

How long the default training is follows the run profile (``settings.by_profile``): the full
profile is what the lesson's outputs show, the quick one a shorter run for the test suite and
slow laptops.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace

import torch

from .batching import encode, length_bucketed_batches, pad_batch, strided_parts
from .data import ID2LABEL, LABEL2ID, LABELS
from .metrics import evaluate
from .runtime.environment import pick_device
from .schedules import warmup_linear_factor
from .settings import (
    MAX_TOKENS,
    NOTEBOOKS_DIR,
    by_profile,
    full_training_requested,
)

FULL_RUN_RECORD = NOTEBOOKS_DIR / "measurements" / "05_full_setting.json"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FineTuneConfig:
    """Every knob of the fine-tune. ``default_config()`` is the lesson's setting for the current
    run profile; ``full_config()`` the longer FULL one."""

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
    val_size: int | None = None  # stratified subsample of the validation split; None = all
    test_size: int | None = None  # stratified subsample of the test split; None = all
    max_steps: int | None = None  # stop after this many optimizer steps; None = all epochs


def default_config(**overrides) -> FineTuneConfig:
    """The default setting, with any field overridden. Under the ``quick`` profile it trains on
    3,000 tweets and validates once, on 500 (the test suite and slow laptops); under ``full`` on
    8,000, validating twice on the whole validation split."""
    quick = {"train_size": 3000, "evals_per_epoch": 1, "val_size": 500}
    return replace(FineTuneConfig(**by_profile(full={}, quick=quick)), **overrides)


def full_config(**overrides) -> FineTuneConfig:
    """The FULL setting (``COURSE_FULL=1``): the whole training pool, nothing frozen, up to 3
    epochs with early stopping (``recorded_full_run()`` holds one measured run). Under the
    ``quick`` profile the same recipe on 4,000 tweets for one epoch."""
    recipe = {"lr": 5e-5, "freeze_embeddings": False, "freeze_layers": 0, "patience": 2}
    length = by_profile(
        full={"train_size": None, "epochs": 3, "evals_per_epoch": 2},
        quick={"train_size": 4000, "epochs": 1, "evals_per_epoch": 1, "val_size": 500},
    )
    return replace(FineTuneConfig(**recipe, **length), **overrides)


def config_from_env(**overrides) -> FineTuneConfig:
    """``full_config()`` when ``COURSE_FULL=1``, else ``default_config()``."""
    return full_config(**overrides) if full_training_requested() else default_config(**overrides)


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


class SingleProcess:
    """How ``fine_tune`` runs in one process. Lesson 08 runs the same loop on several processes
    under ``torchrun`` by passing ``course_lib.distributed.DDPRanks()`` instead, which overrides
    every method below; here each one does the one-process thing."""

    rank, world_size = 0, 1

    @property
    def is_main(self) -> bool:
        """The process that evaluates, logs, shows progress and saves."""
        return self.rank == 0

    def device(self) -> torch.device:
        return pick_device()

    def epoch_batches(self, lengths: list[int], config: FineTuneConfig, epoch: int) -> list:
        """For every optimizer step of one epoch, the parts of its batch with their loss weights
        (one part, or ``grad_accumulation`` parts): ``[[(indices, weight), ...], ...]``."""
        batches = length_bucketed_batches(
            lengths,
            config.batch_size,
            seed=config.seed + epoch,
            bucket_batches=config.bucket_batches,
        )
        return [strided_parts(b, config.grad_accumulation) for b in batches]

    def wrap(self, model):
        """The model the forward and backward passes go through."""
        return model

    def sync(self, model, last_part: bool):
        """Context for one part's backward pass (DDP averages gradients only on the last)."""
        return contextlib.nullcontext()

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the processes (for the log)."""
        return value

    def from_main(self, flag: bool) -> bool:
        """The main process's ``flag`` (its "stop early"), the same in every process."""
        return flag


@dataclass
class TrainResult:
    model: object
    tokenizer: object
    config: FineTuneConfig
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
    config: FineTuneConfig | None = None,
    device=None,
    progress: bool = True,
    ranks: SingleProcess | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on the given data; return the model with its best validation
    weights.

    ``config`` defaults to ``default_config()``; its ``max_steps`` cuts training short. Seeds are
    fixed by ``config.seed``. ``ranks`` (default ``SingleProcess()``) says how the processes
    share the work (lesson 08).
    """
    from tqdm.auto import tqdm

    if len(train_texts) != len(train_labels) or len(val_texts) != len(val_labels):
        raise ValueError(
            f"texts and labels differ in length: train {len(train_texts)} vs {len(train_labels)}, "
            f"validation {len(val_texts)} vs {len(val_labels)}"
        )
    config = config or default_config()
    ranks = ranks or SingleProcess()
    if not 1 <= config.grad_accumulation <= config.batch_size:
        raise ValueError(
            f"grad_accumulation must be between 1 and batch_size ({config.batch_size}), got "
            f"{config.grad_accumulation}"
        )
    device = torch.device(device) if device is not None else ranks.device()
    torch.manual_seed(config.seed)  # the new head's initial weights and dropout
    model, tokenizer = load_pretrained_classifier(config.model)
    freeze_lower_layers(model, config.freeze_embeddings, config.freeze_layers)
    model.to(device).train()
    wrapped = ranks.wrap(model)  # the model itself in one process, DDP(model) under torchrun

    ids = encode(tokenizer, train_texts, config.max_length)
    lengths = [len(s) for s in ids]
    steps_per_epoch = math.ceil(len(ids) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
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
    bar = tqdm(total=total_steps, desc="fine-tuning", disable=not (progress and ranks.is_main))
    for epoch in range(config.epochs):
        # length-bucketed batches of config.batch_size, each as its parts with their loss weights
        batches = ranks.epoch_batches(lengths, config, epoch)
        for i, parts in enumerate(batches, start=1):
            t0 = time.perf_counter()
            loss, tokens = 0.0, 0
            for k, (b, weight) in enumerate(parts, start=1):
                batch = pad_batch(
                    [ids[j] for j in b], [train_labels[j] for j in b], tokenizer.pad_token_id
                )
                batch = {key: v.to(device) for key, v in batch.items()}
                with ranks.sync(wrapped, last_part=k == len(parts)):
                    # cross-entropy (we passed labels), weighted by this part's share of the batch
                    part_loss = wrapped(**batch).loss * weight
                    part_loss.backward()
                loss, tokens = loss + part_loss.detach(), tokens + int(batch["input_ids"].numel())
            loss = ranks.average(loss)  # the mean loss over the whole batch, on every rank
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
            if (i in eval_points or last) and ranks.is_main:  # only rank 0 evaluates
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
                result.stopped_early = ranks.from_main(result.stopped_early)
            if result.stopped_early or last:
                break
        if result.stopped_early or step >= total_steps:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def config_overrides(config: FineTuneConfig, pairs: list[str]) -> dict:
    """``["batch_size=16", "model=minilm"]`` -> ``{"batch_size": 16, "model": "minilm"}``, each
    value converted to the type of the field's current value (``none`` gives None)."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not hasattr(config, name):
            raise ValueError(f"--set expects FIELD=VALUE with a FineTuneConfig field, got {pair!r}")
        current = getattr(config, name)
        if text.lower() == "none":
            out[name] = None
        elif isinstance(current, bool):
            out[name] = text.lower() in ("1", "true", "yes")
        else:
            out[name] = type(current)(text) if current is not None else int(text)
    return out
