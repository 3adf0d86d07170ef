"""Training lesson 09's decoder from scratch on the course's tweets: a byte-level BPE tokenizer,
the training loop, the saved model reused when its settings are the same, and the n-gram
baselines it must beat. How long it trains follows the run profile (``settings.by_profile``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .artifacts import SUMMARY_FILE, folder_lock
from .batching import length_bucketed_batches
from .gpt import GPT, GPTConfig, next_token_loss, perplexity, right_padded
from .gpt_hf import load_pretrained, save_pretrained
from .runtime.environment import pick_device
from .schedules import warmup_linear_factor
from .settings import REUSE_MODELS_ENV, artifacts_dir, by_profile, env_flag

PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2: GPTConfig's defaults


def train_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped for Hugging Face.

    Lower-cased (a small model spends its few parameters better on one spelling of a word than
    on two); byte-level, so any text encodes without an unknown token. Encoding adds ``<s>`` in
    front, so a prompt from ``pipeline("text-generation")`` starts the way every training tweet
    did. Returns a ``PreTrainedTokenizerFast`` (``save_pretrained`` writes ``tokenizer.json``).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be at least 300 (256 bytes + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )


def encode_tweets(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    """``[<s>, t_1 .. t_n, </s>]`` per text, cut to ``max_len`` tokens (the end is then lost)."""
    ids = tokenizer(list(texts))["input_ids"]
    return [(row + [tokenizer.eos_token_id])[:max_len] for row in ids]


def bpe_merges(tokenizer) -> list[tuple[str, str]]:
    """The merges a BPE tokenizer learned, in the order it learned them: training starts from
    single bytes and, again and again, joins the pair of adjacent symbols seen most often in the
    training texts into a new token. Byte-level symbols: ``Ġ`` stands for a space."""
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def bpe_steps(tokenizer, word: str) -> list[list[str]]:
    """How BPE splits ``word``: from its byte-level characters, apply the earliest-learned merge
    among the adjacent pairs, again and again, until no pair is a merge. Returns every state,
    characters first; the last is ``tokenizer.tokenize(word)``. A leading space belongs to the
    word (``" flight"`` becomes ``Ġflight``)."""
    backend = tokenizer.backend_tokenizer
    pieces = backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(word))
    if len(pieces) != 1:
        raise ValueError(
            f"bpe_steps takes one word (a leading space allowed), got {word!r}, which splits "
            f"into {[p for p, _ in pieces]} before BPE"
        )
    merges = bpe_merges(tokenizer)
    rank = {pair: i for i, pair in enumerate(merges)}
    symbols = list(pieces[0][0])
    steps = [symbols]
    while True:
        found = [rank[pair] for pair in zip(symbols, symbols[1:]) if pair in rank]
        if not found:
            return steps
        a, b = merges[min(found)]
        merged, i = [], 0
        while i < len(symbols):  # join every occurrence of the pair, left to right
            if symbols[i : i + 2] == [a, b]:
                merged.append(a + b)
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
        steps.append(symbols)


def add_k_sweep(
    train_rows: list[list[int]], val_rows: list[list[int]], vocab_size: int, ks=(0.01,)
) -> list[dict]:
    """Unigram and bigram perplexity on the same predicted tokens as ``perplexity``, for each
    smoothing constant ``k``: ``[{"k", "unigram", "bigram", "tokens"}, ...]``.

    Add-k smoothing, counts from ``train_rows``:
    ``p(t) = (c(t) + k) / (N + kV)`` and ``p(t | u) = (c(u, t) + k) / (c(u) + kV)``.
    """
    import numpy as np

    V = vocab_size
    uni, bi = np.zeros(V), np.zeros((V, V))
    for r in train_rows:
        a = np.asarray(r)
        np.add.at(uni, a[1:], 1)
        np.add.at(bi, (a[:-1], a[1:]), 1)
    prev = np.concatenate([r[:-1] for r in val_rows])
    nxt = np.concatenate([r[1:] for r in val_rows])
    rows = []
    for k in ks:
        p_uni = (uni[nxt] + k) / (uni.sum() + k * V)
        p_bi = (bi[prev, nxt] + k) / (bi.sum(1)[prev] + k * V)
        rows.append(
            {
                "k": k,
                "unigram": float(np.exp(-np.log(p_uni).mean())),
                "bigram": float(np.exp(-np.log(p_bi).mean())),
                "tokens": int(len(nxt)),
            }
        )
    return rows


def ngram_perplexities(
    train_rows: list[list[int]], val_rows: list[list[int]], vocab_size: int, k: float = 0.01
) -> dict[str, float]:
    """Unigram and bigram perplexity with one smoothing constant ``k`` (see ``add_k_sweep``)."""
    row = add_k_sweep(train_rows, val_rows, vocab_size, (k,))[0]
    return {name: row[name] for name in ("unigram", "bigram", "tokens")}


# ---------------------------------------------------------------- training from scratch


@dataclass(frozen=True)
class GPTTrainConfig:
    """Everything that decides the trained model; a saved model is reused only for an equal one."""

    vocab_size: int = 1024
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 344
    max_len: int = 64
    batch_size: int = 32
    steps: int = 1000  # under the quick profile: see default_gpt_config()
    lr: float = 4e-3
    warmup_steps: int = 30
    weight_decay: float = 0.1
    eval_every: int = 200
    eval_tweets: int = 300
    patience: int = 3
    seed: int = 0

    def model_config(self) -> GPTConfig:
        return GPTConfig(self.vocab_size, self.d_model, self.n_layers, self.n_heads, self.d_ff)


def default_gpt_config(**overrides) -> GPTTrainConfig:
    """Lesson 09's setting for the current run profile, with any field overridden: under
    ``full`` 1,000 optimizer steps, evaluated every 200; under ``quick`` (the test suite, slow
    laptops) 240 steps, evaluated every 80."""
    quick = {"steps": 240, "eval_every": 80}
    return replace(GPTTrainConfig(**by_profile(full={}, quick=quick)), **overrides)


def train_gpt(
    train_texts, val_texts, config: GPTTrainConfig | None = None, progress=True, device=None
):
    """Train tokenizer and decoder from scratch; keep the weights with the best validation loss.

    Returns ``(model, tokenizer, log)``; ``log`` holds the loss per step, the validation
    evaluations, the seconds spent, and whether it stopped early (``patience`` evaluations
    without improvement). Validation during training uses the first ``eval_tweets`` tweets.
    ``device`` defaults to CUDA when present; the model comes back on the CPU.
    """
    from tqdm.auto import tqdm

    config = config or default_gpt_config()
    torch.manual_seed(config.seed)
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    rows = encode_tweets(tokenizer, train_texts, config.max_len)
    val_rows = encode_tweets(tokenizer, val_texts[: config.eval_tweets], config.max_len)
    device = device or pick_device()
    model = GPT(config.model_config()).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]  # no weight decay on norm gains
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_linear_factor(s, config.warmup_steps, config.steps)
    )
    log = {"history": [], "evaluations": [], "train_seconds": 0.0, "stopped_early": False}
    best, best_state, since_best, step, epoch = math.inf, None, 0, 0, 0
    # a few redraws a second, not one per step: a flood of widget messages can stall nbval
    bar = tqdm(total=config.steps, desc="training", disable=not progress, mininterval=0.5)
    lengths = [len(r) for r in rows]
    while step < config.steps and not log["stopped_early"]:
        for b in length_bucketed_batches(lengths, config.batch_size, seed=config.seed + epoch):
            t0 = time.perf_counter()
            model.train()
            ids = right_padded([rows[i] for i in b]).to(device)
            loss = next_token_loss(model(ids).logits, ids)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            log["train_seconds"] += time.perf_counter() - t0
            log["history"].append({"step": step, "loss": loss.item()})
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.2f}", refresh=False)
            if step % config.eval_every == 0 or step == config.steps:
                val_loss = math.log(perplexity(model, val_rows))
                log["evaluations"].append({"step": step, "val_loss": val_loss})
                if val_loss < best:
                    best, since_best = val_loss, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                    log["stopped_early"] = since_best >= config.patience
            if step >= config.steps or log["stopped_early"]:
                break
        epoch += 1
    bar.close()
    model.load_state_dict(best_state)
    model.cpu()
    log["epochs"] = round(step * config.batch_size / len(rows), 2)
    return model.eval(), tokenizer, log


def default_folder():
    """``artifacts/gpt-tweets`` at the repository root (or under ``$COURSE_ARTIFACTS``)."""
    return artifacts_dir() / "gpt-tweets"


def trained_gpt(config: GPTTrainConfig | None = None, folder=None, reuse=None, progress=True):
    """Train on the course's training split and save, or reuse an identical earlier run.

    ``reuse`` defaults to the environment variable ``COURSE_REUSE_MODELS`` (off: always train).
    A saved model is reused only when its ``training_summary.json`` records the same config.
    Returns ``(model, tokenizer, summary)`` and prints which of the two happened.
    """
    from .data import load_split

    config = config or default_gpt_config()
    folder = default_folder() if folder is None else Path(folder)
    reuse = env_flag(REUSE_MODELS_ENV) if reuse is None else reuse
    with folder_lock(folder) if reuse else contextlib.nullcontext():
        summary_file = folder / SUMMARY_FILE
        if reuse and summary_file.is_file():
            summary = json.loads(summary_file.read_text())
            if summary.get("config") == asdict(config):
                print(f"Reused the model trained earlier with the same config ({folder.name}/).")
                model, tokenizer = load_pretrained(folder)
                return model, tokenizer, summary
        train_texts, _ = load_split("train")
        val_texts, _ = load_split("validation")
        model, tokenizer, log = train_gpt(train_texts, val_texts, config, progress)
        summary = {
            "config": asdict(config),
            "parameters": model.num_parameters(),
            "train_tweets": len(train_texts),
            "threads": torch.get_num_threads(),
            **log,
        }
        save_pretrained(model, tokenizer, folder, summary)
    print(f"Trained a new model in {log['train_seconds']:.0f} s and saved it to {folder.name}/.")
    return model, tokenizer, summary
