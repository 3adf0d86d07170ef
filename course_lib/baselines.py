"""Baselines a fine-tuned model must beat, on the same split.

- ``majority_baseline``: always predict the most frequent training label.
- ``tfidf_baseline``: TF-IDF of word 1- and 2-grams, then logistic regression, trained on the
  whole training pool; the regularisation strength ``C`` is picked on the validation set.
  It is strong on tweets: sentiment often sits in a few words ("worst", "love", "delayed").
- ``embedding_baseline``: the *frozen* pretrained MiniLM, mean-pooled over real tokens, then
  logistic regression. Encoding costs a forward pass per tweet, so by default it trains on a
  stratified subsample of the pool (``n_train``) to stay cheap on a laptop.

Each returns a dict with ``classification_metrics`` on the evaluation set, plus ``seconds``.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import torch

from .batching import encode, length_bucketed_batches, pad_batch
from .bert import mean_pooling
from .metrics import classification_metrics
from .settings import MAX_TOKENS

TFIDF_C_GRID = (1.0, 3.0, 10.0, 30.0)


def majority_baseline(train_labels: list[int], test_labels: list[int]) -> dict:
    """Predict the most common training label for every example."""
    t0 = time.perf_counter()
    majority = Counter(train_labels).most_common(1)[0][0]
    metrics = classification_metrics(test_labels, [majority] * len(test_labels))
    metrics.update(seconds=time.perf_counter() - t0, predicted_label=int(majority))
    return metrics


def tfidf_vectorizer():
    """TF-IDF of word 1- and 2-grams (lower-cased, sublinear tf, seen in at least 2 tweets)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def tfidf_baseline(
    train_texts: list[str],
    train_labels: list[int],
    val_texts: list[str],
    val_labels: list[int],
    test_texts: list[str],
    test_labels: list[int],
    c_grid=TFIDF_C_GRID,
    seed: int = 0,
) -> dict:
    """TF-IDF + logistic regression; ``C`` chosen by validation macro-F1, then scored on test.

    The vocabulary is fitted on the training texts only. Returns the metrics plus ``C``,
    ``validation_macro_f1_by_C``, ``seconds``, and the fitted ``vectorizer`` and ``classifier``.
    """
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    vectorizer = tfidf_vectorizer().fit(train_texts)
    x_train, x_val, x_test = (vectorizer.transform(t) for t in (train_texts, val_texts, test_texts))
    fitted, scores = {}, {}
    for C in c_grid:
        fitted[C] = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(
            x_train, train_labels
        )
        scores[C] = classification_metrics(val_labels, fitted[C].predict(x_val))["macro_f1"]
    best_c = max(scores, key=scores.get)
    metrics = classification_metrics(test_labels, fitted[best_c].predict(x_test))
    metrics.update(
        seconds=time.perf_counter() - t0,
        C=best_c,
        validation_macro_f1_by_C=scores,
        vectorizer=vectorizer,
        classifier=fitted[best_c],
        n_features=x_train.shape[1],
    )
    return metrics


@torch.inference_mode()
def mean_pooled_embeddings(
    texts: list[str],
    model: str = "minilm",
    batch_size: int = 128,
    max_length: int = MAX_TOKENS,
    progress: bool = False,
) -> np.ndarray:
    r"""Sentence vectors from a frozen encoder: ``(N, hidden)``, L2-normalised.

    :math:`e = \sum_t m_t h_t / \sum_t m_t` over the last hidden states ``h (L, hidden)`` with the
    attention mask ``m`` (so padding does not count) -- how all-MiniLM-L6-v2 was trained to be used.
    """
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from .models import resolve_model

    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder).eval()
    ids = encode(tokenizer, texts, max_length)
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for b in tqdm(
        length_bucketed_batches([len(s) for s in ids], batch_size, shuffle=False),
        desc="embedding",
        disable=not progress,
        leave=False,
    ):
        batch = pad_batch([ids[i] for i in b], pad_id=tokenizer.pad_token_id)
        h = encoder(**batch).last_hidden_state  # (B, L, hidden)
        e = mean_pooling(h, batch["attention_mask"])
        out[b] = torch.nn.functional.normalize(e, dim=-1).numpy()
    return out


def embedding_baseline(
    train_texts: list[str],
    train_labels: list[int],
    test_texts: list[str],
    test_labels: list[int],
    n_train: int | None = 2000,
    model: str = "minilm",
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Frozen mean-pooled MiniLM embeddings + logistic regression, trained on ``n_train`` pool
    tweets."""
    from sklearn.linear_model import LogisticRegression

    from .data import subsample

    t0 = time.perf_counter()
    if n_train is not None:
        train_texts, train_labels = subsample(train_texts, train_labels, n_train, seed=seed)
    x_train = mean_pooled_embeddings(train_texts, model, progress=progress)
    x_test = mean_pooled_embeddings(test_texts, model, progress=progress)
    clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed).fit(x_train, train_labels)
    metrics = classification_metrics(test_labels, clf.predict(x_test))
    metrics.update(seconds=time.perf_counter() - t0, n_train=len(train_texts))
    return metrics
