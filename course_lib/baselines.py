"""Baselines a fine-tuned model must beat, on the same split.

- ``majority_baseline``: always predict the most frequent training label.
- ``tfidf_baseline``: TF-IDF of word 1- and 2-grams, then logistic regression. Its
  regularisation strength ``C`` and its class weighting (none, or ``"balanced"``: each class
  weighted by the inverse of its frequency, which helps macro-F1 on imbalanced data) are picked
  together on the validation set. It is strong on tweets: sentiment often sits in a few words
  ("worst", "love", "delayed").
- ``embedding_baseline``: the *frozen* pretrained MiniLM, one vector per tweet, then logistic
  regression. Encoding costs a forward pass per tweet, so by default it trains on a stratified
  subsample of the pool (``n_train``) to stay cheap on a laptop. It scores three sentence
  vectors from the same forward pass (``frozen_features``): the mean over real tokens (how
  all-MiniLM-L6-v2 was trained to be used), the final ``[CLS]`` vector, and the pooler's output
  (dense + tanh on ``[CLS]``, what ``BertForSequenceClassification`` feeds its classifier).

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
from .settings import MAX_TOKENS, by_profile

TFIDF_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
TFIDF_CLASS_WEIGHTS = (None, "balanced")


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


def weighting_name(class_weight) -> str:
    """``"none"`` or ``"balanced"``: how a class weighting is shown in tables."""
    return "none" if class_weight is None else str(class_weight)


def tfidf_baseline(
    train_texts: list[str],
    train_labels: list[int],
    val_texts: list[str],
    val_labels: list[int],
    test_texts: list[str],
    test_labels: list[int],
    c_grid=TFIDF_C_GRID,
    class_weights=TFIDF_CLASS_WEIGHTS,
    seed: int = 0,
) -> dict:
    """TF-IDF + logistic regression; ``C`` and the class weighting chosen together by validation
    macro-F1, then the chosen model scored once on test.

    The vocabulary is fitted on the training texts only. Each fit is solved with Newton-CG, which
    converges in a handful of iterations on these features (lbfgs, scikit-learn's default, needs
    over a hundred and stops earlier). Returns the test metrics plus ``C``, ``class_weight``,
    ``validation_macro_f1`` (of the chosen model), ``validation_grid``
    (``{weighting_name: {C: validation macro-F1}}``), ``best_c_inside_grid`` (False when the best
    ``C`` is the smallest or largest tried: the grid should then be widened), ``n_features``,
    ``n_train``, ``seconds``, and the fitted ``vectorizer`` and ``classifier``.
    """
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    vectorizer = tfidf_vectorizer().fit(train_texts)
    x_train, x_val, x_test = (vectorizer.transform(t) for t in (train_texts, val_texts, test_texts))
    grid: dict[str, dict[float, float]] = {}
    best = None  # (validation macro-F1, C, class_weight, classifier)
    for class_weight in class_weights:
        scores = grid.setdefault(weighting_name(class_weight), {})
        for C in c_grid:
            clf = LogisticRegression(
                C=C, class_weight=class_weight, solver="newton-cg", max_iter=1000, random_state=seed
            ).fit(x_train, train_labels)
            scores[C] = classification_metrics(val_labels, clf.predict(x_val))["macro_f1"]
            if best is None or scores[C] > best[0]:
                best = (scores[C], C, class_weight, clf)
    val_f1, best_c, best_weight, classifier = best
    metrics = classification_metrics(test_labels, classifier.predict(x_test))
    metrics.update(
        seconds=time.perf_counter() - t0,
        C=best_c,
        class_weight=best_weight,
        validation_macro_f1=val_f1,
        validation_grid=grid,
        best_c_inside_grid=len(c_grid) < 3 or min(c_grid) < best_c < max(c_grid),
        vectorizer=vectorizer,
        classifier=classifier,
        n_features=x_train.shape[1],
        n_train=len(train_texts),
    )
    return metrics


POOLINGS = ("mean", "cls", "pooler")


@torch.inference_mode()
def frozen_features(
    texts: list[str],
    model: str = "minilm",
    batch_size: int = 128,
    max_length: int = MAX_TOKENS,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    r"""Sentence vectors from a frozen encoder, three kinds from one forward pass, each
    ``(N, hidden)`` and L2-normalised:

    - ``"mean"``: :math:`e = \sum_t m_t h_t / \sum_t m_t` over the last hidden states ``h`` with
      the attention mask ``m`` (so padding does not count) -- how all-MiniLM-L6-v2 was trained to
      be used;
    - ``"cls"``: the last hidden state of the first token, ``[CLS]``;
    - ``"pooler"``: :math:`\tanh(W h_{[CLS]} + b)`, the pooler layer stored in the checkpoint,
      which ``BertForSequenceClassification`` puts between ``[CLS]`` and its classifier.
    """
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    from .models import resolve_model

    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder).eval()
    ids = encode(tokenizer, texts, max_length)
    out = {
        k: np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32) for k in POOLINGS
    }
    for b in tqdm(
        length_bucketed_batches([len(s) for s in ids], batch_size, shuffle=False),
        desc="embedding",
        disable=not progress,
        leave=False,
    ):
        batch = pad_batch([ids[i] for i in b], pad_id=tokenizer.pad_token_id)
        outputs = encoder(**batch)
        h = outputs.last_hidden_state  # (B, L, hidden)
        vectors = {
            "mean": mean_pooling(h, batch["attention_mask"]),
            "cls": h[:, 0],
            "pooler": outputs.pooler_output,
        }
        for k, v in vectors.items():
            out[k][b] = torch.nn.functional.normalize(v, dim=-1).numpy()
    return out


def mean_pooled_embeddings(
    texts: list[str],
    model: str = "minilm",
    batch_size: int = 128,
    max_length: int = MAX_TOKENS,
    progress: bool = False,
) -> np.ndarray:
    """The ``"mean"`` vectors of ``frozen_features``: ``(N, hidden)``, L2-normalised, equal to
    sentence-transformers' ``encode(..., normalize_embeddings=True)`` for this model."""
    return frozen_features(texts, model, batch_size, max_length, progress)["mean"]


def embedding_baseline(
    train_texts: list[str],
    train_labels: list[int],
    test_texts: list[str],
    test_labels: list[int],
    n_train: int | None = None,
    model: str = "minilm",
    seed: int = 0,
    progress: bool = False,
    n_test: int | None = None,
) -> dict:
    """Frozen MiniLM vectors + logistic regression (``C=10``), trained on ``n_train`` pool tweets
    and tested on ``n_test`` test tweets (stratified subsamples). ``None`` means the run
    profile's sizes: 2,000 and the whole test set under ``full``, 500 and 500 under ``quick``.

    The top-level metrics are those of the mean-pooled vectors; ``by_pooling`` holds the metrics
    of each kind of ``frozen_features`` (``"mean"``, ``"cls"``, ``"pooler"``), all from the same
    forward passes. Also ``n_train`` and ``seconds``.
    """
    from sklearn.linear_model import LogisticRegression

    from .data import subsample

    t0 = time.perf_counter()
    n_train = n_train or by_profile(full=2000, quick=500)
    n_test = n_test or by_profile(full=len(test_texts), quick=500)
    train_texts, train_labels = subsample(train_texts, train_labels, n_train, seed=seed)
    test_texts, test_labels = subsample(test_texts, test_labels, n_test, seed=seed)
    x_train = frozen_features(train_texts, model, progress=progress)
    x_test = frozen_features(test_texts, model, progress=progress)
    by_pooling = {}
    for kind in POOLINGS:
        clf = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
        clf.fit(x_train[kind], train_labels)
        by_pooling[kind] = classification_metrics(test_labels, clf.predict(x_test[kind]))
    metrics = dict(by_pooling["mean"])
    metrics.update(
        seconds=time.perf_counter() - t0, n_train=len(train_texts), by_pooling=by_pooling
    )
    return metrics
