"""The starter: a valid submission from lesson 05's TF-IDF baseline, in well under 2 minutes.

It trains lesson 05's TF-IDF features (``course_lib.baselines.tfidf_vectorizer``) + logistic
regression on the training pool with one fixed ``C`` and no class weighting, one fit
(``tfidf_baseline`` searches six values of ``C`` with and without class weighting on the
validation set, twelve fits; a team that wants the stronger baseline calls it), labels the
challenge texts, and writes ``id,label`` lines. Teams replace the model, never the format.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..data import ID2LABEL, load_split
from .challenge import read_challenge_texts
from .submissions import write_submission

STARTER_C = 10.0


def train_tfidf_baseline(c: float = STARTER_C, seed: int = 0) -> dict:
    """TF-IDF + logistic regression fitted on the training pool; returns ``vectorizer``,
    ``classifier`` and ``macro_f1`` on lesson 05's validation split."""
    from sklearn.linear_model import LogisticRegression

    from ..baselines import tfidf_vectorizer
    from ..metrics import classification_metrics

    texts, labels = load_split("train")
    val_texts, val_labels = load_split("validation")
    vectorizer = tfidf_vectorizer().fit(texts)
    classifier = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    classifier.fit(vectorizer.transform(texts), labels)
    predicted = classifier.predict(vectorizer.transform(val_texts))
    return {
        "vectorizer": vectorizer,
        "classifier": classifier,
        "macro_f1": classification_metrics(val_labels, predicted)["macro_f1"],
    }


def starter_submission(challenge_csv: str | Path, out: str | Path) -> dict:
    """Label every tweet of ``challenge_csv`` (``id,text``) with the baseline; write ``out``.

    Returns ``path``, ``seconds``, the baseline's ``validation_macro_f1`` on lesson 05's
    validation split, and ``predict``, a function texts -> labels (for a stand-in service)."""
    t0 = time.perf_counter()
    ids, texts = read_challenge_texts(challenge_csv)
    baseline = train_tfidf_baseline()
    vectorizer, classifier = baseline["vectorizer"], baseline["classifier"]

    def predict(batch: list[str]) -> list[str]:
        return [ID2LABEL[int(k)] for k in classifier.predict(vectorizer.transform(batch))]

    path = write_submission(out, ids, predict(texts))
    return {
        "path": Path(path),
        "seconds": time.perf_counter() - t0,
        "validation_macro_f1": baseline["macro_f1"],
        "predict": predict,
    }
