"""Lesson 05's fine-tune through Hugging Face's ``transformers.Trainer``, for comparison with the
loop written out in ``course_lib.train``.

    python -m course_lib.hf_trainer [--full] [--set FIELD=VALUE ...]   # both, on the same tweets
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from .batching import encode
from .train import FineTuneConfig, freeze_lower_layers, load_pretrained_classifier


class _TokenizedDataset(torch.utils.data.Dataset):
    def __init__(self, ids: list[list[int]], labels: list[int]):
        self.ids, self.labels = ids, labels

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def fine_tune_with_trainer(
    train_texts: list[str],
    train_labels: list[int],
    config: FineTuneConfig | None = None,
    output_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """The same recipe through ``transformers.Trainer``: same model, freezing, optimizer (AdamW,
    no decay on biases/LayerNorm), warm-up + linear decay, clipping, batch size, length grouping,
    seed. No mid-training validation (Trainer's early stopping needs checkpoints; we keep it lean).

    Returns ``{"model", "tokenizer", "train_seconds", "log_history"}``.
    """
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from .train import default_config

    config = config or default_config()

    torch.manual_seed(config.seed)
    model, tokenizer = load_pretrained_classifier(config.model)
    freeze_lower_layers(model, config.freeze_embeddings, config.freeze_layers)
    ids = encode(tokenizer, train_texts, config.max_length)
    tmp = None
    if output_dir is None:
        tmp = tempfile.mkdtemp(prefix="trainer-")
        output_dir = tmp
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        # Transformers 5 reads a float below 1 as a fraction of all steps (warmup_ratio is gone).
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=config.grad_clip,
        train_sampling_strategy="group_by_length",
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_TokenizedDataset(ids, list(train_labels)),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "model": trainer.model.eval(),
        "tokenizer": tokenizer,
        "train_seconds": seconds,
        "log_history": trainer.state.log_history,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.hf_trainer [--full] [--out DIR] [--set FIELD=VALUE ...]``: the same
    recipe with our loop (``course_lib.finetuned.train_and_save``) and with the ``Trainer``, on
    the same tweets; prints both runs' training time and test metrics (JSON)."""
    import argparse

    from . import finetuned
    from .data import load_split, subsample
    from .metrics import evaluate
    from .runtime.environment import setup

    parser = argparse.ArgumentParser(
        prog="python -m course_lib.hf_trainer", description=main.__doc__
    )
    args = finetuned.command_line_options(parser).parse_args(argv)
    setup()
    config = finetuned.config_from_args(args)
    start = time.perf_counter()
    _, _, folder = finetuned.train_and_save(config, args.out)
    report = {"ours": finetuned.run_report(config, folder, time.perf_counter() - start)}
    texts, labels = load_split("train")
    if config.train_size is not None:
        texts, labels = subsample(texts, labels, config.train_size, seed=config.seed)
    hf = fine_tune_with_trainer(texts, labels, config)
    test_texts, test_labels = load_split("test")
    test = evaluate(hf["model"], hf["tokenizer"], test_texts, test_labels, config.eval_batch_size)
    report["trainer"] = {
        "train_seconds": round(hf["train_seconds"], 1),
        "test": {k: v for k, v in test.items() if k != "logits"},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
