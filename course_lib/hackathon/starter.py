"""Two ways to a valid submission: the starter (lesson 05's tuned TF-IDF baseline, in well under
2 minutes) and lesson 05's fine-tuned model, each through one call.

``starter_submission`` fits ``course_lib.baselines.tfidf_baseline`` (TF-IDF features + logistic
regression; ``C`` and the class weighting chosen on lesson 05's validation split, twelve fits,
the same baseline lesson 05 reports) on the training pool, labels the challenge texts and writes
``id,label`` lines. ``model_submission`` does the same with a fine-tuned model folder (ONNX
Runtime int8 by default, as lesson 07's service runs it). Teams replace the model, never the
format.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data import ID2LABEL, LABELS, load_split
from ..settings import by_profile
from .challenge import read_challenge_texts
from .submissions import write_submission

# One text per model call, as the service answers the scorer: ONNX Runtime's dynamic int8
# quantises each call's activations with a scale taken from the whole batch, so a tweet's answer
# could otherwise depend on its neighbours (measured: 0.516 against 0.534 public macro-F1).
BATCH = 1
QUICK_C_GRID = (3.0,)  # lesson 05's choice on its validation split (C=3, balanced weighting)


def train_tfidf_baseline(seed: int = 0, **grid) -> dict:
    """Lesson 05's tuned TF-IDF baseline fitted on the training pool: the metrics of
    ``baselines.tfidf_baseline`` (``validation_macro_f1``, test ``macro_f1``, ``C``,
    ``class_weight``, ``vectorizer``, ``classifier``). ``grid``: ``c_grid`` and
    ``class_weights`` to search instead of lesson 05's (the quick profile tries only the ``C``
    lesson 05 chooses, ``QUICK_C_GRID``: 2 fits instead of 12)."""
    from ..baselines import TFIDF_C_GRID, tfidf_baseline

    grid.setdefault("c_grid", by_profile(full=TFIDF_C_GRID, quick=QUICK_C_GRID))
    splits = [load_split(name) for name in ("train", "validation", "test")]
    return tfidf_baseline(*(part for split in splits for part in split), seed=seed, **grid)


def _labels_of(probabilities: np.ndarray) -> list[str]:
    return [LABELS[k] for k in np.asarray(probabilities).argmax(axis=1)]


def starter_submission(challenge_csv: str | Path, out: str | Path, **grid) -> dict:
    """Label every tweet of ``challenge_csv`` (``id,text``) with the tuned baseline; write ``out``.

    Returns ``path``, ``seconds``, the baseline's ``validation_macro_f1`` and test ``macro_f1``
    on lesson 05's splits, its ``C`` and ``class_weight``, and two functions for later cells:
    ``predict`` (texts -> labels, e.g. for a stand-in service) and ``predict_proba`` (texts ->
    probabilities in the order of ``LABELS``). ``grid``: as ``train_tfidf_baseline``."""
    t0 = time.perf_counter()
    ids, texts = read_challenge_texts(challenge_csv)
    baseline = train_tfidf_baseline(**grid)
    vectorizer, classifier = baseline["vectorizer"], baseline["classifier"]
    order = [list(classifier.classes_).index(k) for k in sorted(ID2LABEL)]

    def predict_proba(batch: list[str]) -> np.ndarray:
        return classifier.predict_proba(vectorizer.transform(batch))[:, order]

    def predict(batch: list[str]) -> list[str]:
        return _labels_of(predict_proba(batch))

    path = write_submission(out, ids, predict(texts))
    return {
        "path": Path(path),
        "seconds": time.perf_counter() - t0,
        "validation_macro_f1": baseline["validation_macro_f1"],
        "test_macro_f1": baseline["macro_f1"],
        "C": baseline["C"],
        "class_weight": baseline["class_weight"],
        "predict": predict,
        "predict_proba": predict_proba,
    }


def model_submission(
    model_dir: str | Path, challenge_csv: str | Path, out: str | Path, backend: str = "onnx"
) -> dict:
    """Label every tweet of ``challenge_csv`` with the fine-tuned model in ``model_dir``
    (``backend`` ``"onnx"``: ONNX Runtime int8, exported on first use; or ``"torch"``); write
    ``out``. Returns ``path``, ``seconds``, ``predict`` and ``predict_proba`` as the starter."""
    from tqdm.auto import tqdm

    from ..serving.predictor import load_predictor

    t0 = time.perf_counter()
    ids, texts = read_challenge_texts(challenge_csv)
    predictor = load_predictor(model_dir, backend)
    order = [predictor.labels.index(label) for label in LABELS]

    def predict_proba(batch: list[str], progress: bool = False) -> np.ndarray:
        steps = range(0, len(batch), BATCH)
        parts = [
            np.asarray(predictor.predict_proba(batch[i : i + BATCH]))[:, order]
            for i in tqdm(steps, desc="labelling", leave=False, disable=not progress)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, len(LABELS)))

    def predict(batch: list[str]) -> list[str]:
        return _labels_of(predict_proba(batch))

    path = write_submission(out, ids, _labels_of(predict_proba(texts, progress=True)))
    return {
        "path": Path(path),
        "seconds": time.perf_counter() - t0,
        "predict": predict,
        "predict_proba": predict_proba,
    }
