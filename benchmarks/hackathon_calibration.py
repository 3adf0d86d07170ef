"""The numbers the hackathon's latency bonus and lookup flag are set from (docs/hackathon.md).

    .venv/bin/python -m course_lib train          # lesson 05's default model, if not there yet
    PYTHONPATH=. .venv/bin/python benchmarks/hackathon_calibration.py [--out FILE]

On this machine, with the challenge's answers (read here from the corpus: this is the
instructor's side), it measures:

- macro-F1 on the dev set and on the public and private splits, and agreement (accuracy) on the
  whole challenge, of the tuned TF-IDF starter and of lesson 05's default fine-tuned model
  (ONNX Runtime int8, as a team submits it with ``model_submission``), each as it answers and
  with the class weights that match its predicted shares on the challenge texts to the dev
  set's (``priors.matching_weights``, lesson 10);
- lesson 07's service (``python -m course_lib serve``) through the scorer on loopback, with
  ONNX Runtime int8 and with PyTorch fp32: every challenge tweet, one request at a time, after
  one untimed warm-up; its p95;
- the bootstrap spread (standard deviation over resamples of each split) of the quality gap
  between the two models, to tell a gap from noise.

Prints a JSON report (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from course_lib.finetuned import finetuned_model
from course_lib.hackathon import challenge as C
from course_lib.hackathon import devset
from course_lib.hackathon.fairplay import agreement
from course_lib.hackathon.priors import label_shares, matching_weights, relabel
from course_lib.hackathon.ranking import bootstrap_weights, label_indices, weighted_macro_f1
from course_lib.hackathon.scoring import macro_f1
from course_lib.hackathon.services import query_service
from course_lib.hackathon.split import public_private
from course_lib.hackathon.starter import model_submission, starter_submission
from course_lib.serving.processes import ServerProcess


def scores(predict_proba, dev, challenge, public, private, weights=None) -> dict:
    truth = dict(zip(challenge.ids, challenge.labels))
    on_dev = dict(zip(dev.ids, relabel(predict_proba(dev.texts), weights)))
    on_challenge = dict(zip(challenge.ids, relabel(predict_proba(challenge.texts), weights)))
    return {
        "dev_macro_f1": macro_f1(dev.labels, on_dev, dev.ids),
        "public_macro_f1": macro_f1([truth[i] for i in public], on_challenge, public),
        "private_macro_f1": macro_f1([truth[i] for i in private], on_challenge, private),
        "challenge_macro_f1": macro_f1(challenge.labels, on_challenge, challenge.ids),
        "challenge_agreement": agreement(on_challenge, truth),
    }


def gap_with_spread(labels, first, second) -> dict:
    """``second`` minus ``first`` in macro-F1, and its standard deviation over paired bootstrap
    resamples (the same resampled tweets for both)."""
    truth = label_indices(labels)
    weights = bootstrap_weights(len(labels))
    a = weighted_macro_f1(truth, label_indices(first), weights)
    b = weighted_macro_f1(truth, label_indices(second), weights)
    return {"gap": float(b[0] - a[0]), "bootstrap_sd": float((b - a).std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the report here (JSON)")
    args = parser.parse_args()
    challenge, dev = C.course_challenge(), devset.dev_set()
    public, private = public_private(challenge.ids, challenge.labels)
    report = {
        "measured": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "sizes": {"dev": len(dev.ids), "public": len(public), "private": len(private)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = C.write_challenge(Path(tmp), challenge)
        starter = starter_submission(csv_path, Path(tmp) / "starter.csv")
        model = finetuned_model()
        tuned = model_submission(model, csv_path, Path(tmp) / "model.csv")
        target = label_shares(dev.labels)
        for name, run in (("starter", starter), ("finetuned_onnx_int8", tuned)):
            proba = run["predict_proba"]
            report[name] = scores(proba, dev, challenge, public, private)
            weights = matching_weights(proba(challenge.texts), target)
            report[name + "_matched"] = scores(proba, dev, challenge, public, private, weights)
            report[name + "_matched"]["weights"] = weights.round(3).tolist()
        report["starter"].update(C=starter["C"], class_weight=str(starter["class_weight"]))
        for backend in ("onnx", "torch"):
            log = Path(tmp) / f"serve-{backend}.log"
            with ServerProcess(model, backend=backend, log_path=log) as server:
                run = query_service("lesson07", server.url, challenge.ids, challenge.texts)
            truth = dict(zip(challenge.ids, challenge.labels))
            report[f"service_{backend}"] = {
                "requests_timed": len(run.latencies_ms),
                "p95_ms": run.p95_ms,
                "median_ms": float(np.median(run.latencies_ms)),
                "public_macro_f1": macro_f1([truth[i] for i in public], run.predictions, public),
                "problems": run.problems,
            }
        sets = {"dev": (dev.ids, dev.labels, dev.texts)}
        for name, ids in (("public", public), ("private", private)):
            texts = dict(zip(challenge.ids, challenge.texts))
            sets[name] = (ids, [truth[i] for i in ids], [texts[i] for i in ids])
        report["quality_gap_finetuned_minus_starter"] = {
            name: gap_with_spread(labels, starter["predict"](texts), tuned["predict"](texts))
            for name, (_, labels, texts) in sets.items()
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
