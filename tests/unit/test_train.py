"""course_lib.train and course_lib.baselines: batching, schedule, metrics, a few real steps,
saving."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import (
    artifacts,
    batching,
    finetuned,
    learning_curves,
    metrics,
    schedules,
    train,
    train_checks,
)
from course_lib import settings as course_settings
from course_lib.data import LABELS

TEXTS = [
    "I love this airline",
    "worst flight ever, delayed again",
    "flight 123 lands at 5pm",
    "great service, thank you!",
    "my bag is lost. terrible",
    "is the website down?",
    "amazing crew and snacks",
    "cancelled and no refund",
    "what time is boarding",
    "best trip",
    "never again",
    "gate changed to B4",
] * 2
LABELS_IDS = [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1] * 2


@pytest.fixture(scope="module")
def tiny_run():
    torch.manual_seed(0)
    return train.fine_tune(
        TEXTS,
        LABELS_IDS,
        TEXTS[:6],
        LABELS_IDS[:6],
        train.default_config(batch_size=8, train_size=None, evals_per_epoch=1, max_steps=3),
        progress=False,
    )


# ---------------------------------------------------------------------------------------- batching
def test_pad_batch_matches_hugging_face_collator():
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from course_lib.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    ids = batching.encode(tok, TEXTS[:5])
    ours = batching.pad_batch(ids, LABELS_IDS[:5], pad_id=tok.pad_token_id)
    theirs = DataCollatorWithPadding(tok)(
        [{"input_ids": s, "labels": y} for s, y in zip(ids, LABELS_IDS[:5])]
    )
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(ours[key], theirs[key]), key


def test_pad_batch_rejects_label_count_mismatch():
    with pytest.raises(ValueError, match="2 sequences but 1 labels"):
        batching.pad_batch([[1, 2], [3]], [0])


def test_encode_rejects_single_string():
    with pytest.raises(ValueError, match="single str"):
        batching.encode(None, "hello")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=300),
    st.integers(1, 40),
    st.booleans(),
    st.integers(0, 5),
)
def test_length_bucketed_batches_is_a_partition(lengths, batch_size, shuffle, seed):
    batches = batching.length_bucketed_batches(
        lengths, batch_size, shuffle=shuffle, seed=seed, bucket_batches=4
    )
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert batches == batching.length_bucketed_batches(
        lengths, batch_size, shuffle=shuffle, seed=seed, bucket_batches=4
    )


def test_bucketing_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 64, size=2000).tolist()
    random_batches = [list(range(i, min(i + 32, 2000))) for i in range(0, 2000, 32)]
    bucketed = batching.length_bucketed_batches(lengths, 32, shuffle=True, seed=0)
    assert (
        batching.padding_fraction(lengths, bucketed)
        < 0.1
        < batching.padding_fraction(lengths, random_batches)
    )


# ---------------------------------------------------------------------------------------- schedule
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 200), st.floats(0, 0.5))
def test_warmup_linear_matches_transformers(total, ratio):
    from transformers import get_linear_schedule_with_warmup

    warmup = round(ratio * total)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    for step in range(total + 1):
        assert opt.param_groups[0]["lr"] == pytest.approx(
            schedules.warmup_linear_factor(step, warmup, total), abs=1e-12
        )
        opt.step()
        sched.step()


def test_warmup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="total_steps > 0"):
        schedules.warmup_linear_factor(0, 0, 0)


# ---------------------------------------------------------------------------------------- metrics
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=80))
def test_metrics_match_scikit_learn(pairs):
    from sklearn import metrics as skm

    y_true, y_pred = zip(*pairs)
    ours = metrics.classification_metrics(y_true, y_pred)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    sk_f1 = skm.f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert ours["macro_f1"] == pytest.approx(sk_f1)
    assert metrics.macro_f1_from_confusion(ours["confusion"]) == pytest.approx(sk_f1)
    assert ours["confusion"] == skm.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()
    p, r, _, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0
    )
    for k, name in enumerate(LABELS):
        assert ours["per_class"][name]["precision"] == pytest.approx(p[k])
        assert ours["per_class"][name]["recall"] == pytest.approx(r[k])
        assert ours["per_class"][name]["support"] == s[k]


def test_confusion_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="expected equal shapes"):
        metrics.confusion_matrix([0, 1], [0])


# ---------------------------------------------------------------------------------------- model
def test_freezing_counts_and_bounds():
    model, _ = train.load_pretrained_classifier()
    counts = train.freeze_lower_layers(model, embeddings=True, n_layers=2)
    emb = sum(p.numel() for p in model.base_model.embeddings.parameters())
    layer = sum(p.numel() for p in model.base_model.encoder.layer[0].parameters())
    assert counts["frozen"] == emb + 2 * layer
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert not model.base_model.encoder.layer[1].attention.self.query.weight.requires_grad
    assert model.base_model.encoder.layer[2].attention.self.query.weight.requires_grad
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    with pytest.raises(ValueError, match="0..6"):
        train.freeze_lower_layers(model, n_layers=7)


def test_hf_model_gives_no_loss_without_labels():
    """The article's bug: without labels there is no loss to call backward() on."""
    model, tok = train.load_pretrained_classifier()
    batch = batching.pad_batch(batching.encode(tok, TEXTS[:2]), pad_id=tok.pad_token_id)
    assert model(**batch).loss is None
    assert model(**batch, labels=torch.tensor([2, 0])).loss.ndim == 0


def test_a_few_training_steps(tiny_run):
    r = tiny_run
    assert len(r.history) == 3 and all(np.isfinite(h["loss"]) for h in r.history)
    assert (
        r.history[0]["lr"] > 0 and r.history[-1]["lr"] == 0.0
    )  # warm-up then decay to 0 at the end
    assert len(r.evaluations) == 1 and r.best == r.evaluations[0]
    pretrained, _ = train.load_pretrained_classifier()
    frozen = r.model.base_model.encoder.layer[0].output.dense.weight
    assert torch.equal(frozen, pretrained.base_model.encoder.layer[0].output.dense.weight)
    top = r.model.base_model.encoder.layer[5].output.dense.weight
    assert not torch.equal(top, pretrained.base_model.encoder.layer[5].output.dense.weight)


def test_fine_tune_rejects_length_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        train.fine_tune(TEXTS, LABELS_IDS[:-1], TEXTS, LABELS_IDS, progress=False)


def test_save_reload_with_pipeline(tiny_run, tmp_path):
    from transformers import pipeline

    folder = artifacts.save_classifier(
        tiny_run.model, tiny_run.tokenizer, tmp_path / "clf", {"note": "test"}
    )
    assert artifacts.is_complete_model_folder(folder)
    assert json.loads((folder / artifacts.SUMMARY_FILE).read_text()) == {"note": "test"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # no temp folder left behind
    clf = pipeline("text-classification", model=str(folder))
    out = clf(TEXTS[:3])
    assert {o["label"] for o in out} <= set(LABELS)
    expected = metrics.predict_logits(tiny_run.model, tiny_run.tokenizer, TEXTS[:3]).argmax(1)
    assert [LABELS[i] for i in expected] == [o["label"] for o in out]


def test_save_is_atomic_on_failure(tiny_run, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny_run.tokenizer, "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        artifacts.save_classifier(tiny_run.model, tiny_run.tokenizer, tmp_path / "clf")
    assert list(tmp_path.iterdir()) == []


def test_finetuned_model_uses_cache_and_says_when_missing(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="Run lesson 05"):
        finetuned.finetuned_model(train_if_missing=False)
    (tmp_path / finetuned.DEFAULT_MODEL_NAME).mkdir()  # a half-written folder does not count
    (tmp_path / finetuned.DEFAULT_MODEL_NAME / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError):
        finetuned.finetuned_model(train_if_missing=False)
    artifacts.save_classifier(
        tiny_run.model, tiny_run.tokenizer, tmp_path / finetuned.DEFAULT_MODEL_NAME
    )
    assert finetuned.finetuned_model() == tmp_path / finetuned.DEFAULT_MODEL_NAME


def test_artifacts_dir_is_repo_root_and_ignored(monkeypatch):
    monkeypatch.delenv("COURSE_ARTIFACTS", raising=False)
    root = course_settings.artifacts_dir().parent
    assert (root / "pyproject.toml").is_file()
    assert "artifacts/" in (root / ".gitignore").read_text().split()


def test_full_setting_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.delenv("COURSE_FULL", raising=False)
    assert train.config_from_env() == train.default_config()
    monkeypatch.setenv("COURSE_FULL", "1")
    cfg = train.config_from_env()
    assert cfg == train.full_config() and cfg.train_size is None and cfg.freeze_layers == 0
    monkeypatch.setenv("COURSE_FULL", "0")
    assert not course_settings.full_training_requested()


def test_the_profile_sets_how_long_the_default_and_full_settings_train(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    full_default, full_full = train.default_config(), train.full_config()
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    quick_default, quick_full = train.default_config(), train.full_config()
    assert (full_default.train_size, quick_default.train_size) == (8000, 3000)
    assert quick_default.val_size == 500 and full_default.val_size is None
    assert full_full.train_size is None and full_full.epochs == 3
    assert quick_full.train_size == 4000 and quick_full.epochs == 1
    # the recipe is the same under both profiles; only its length changes
    for a, b in ((full_default, quick_default), (full_full, quick_full)):
        assert (a.lr, a.freeze_layers, a.batch_size) == (b.lr, b.freeze_layers, b.batch_size)
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="COURSE_PROFILE='fast' is not a profile"):
        train.default_config()


def test_recorded_full_run_agrees_with_the_split_and_itself(monkeypatch):
    """The FULL numbers the notebook and README quote come from this record; check it is the FULL
    setting (of the full profile) on today's split and that its metrics are consistent with its
    own confusion matrix."""
    from course_lib.data import load_split

    monkeypatch.setenv("COURSE_PROFILE", "full")
    record = finetuned.recorded_full_run()
    report, cfg = record["report"], train.full_config()
    assert report["setting"] == "FULL" and "--full" in record["command"]
    assert report["train_examples"] == len(load_split("train")[0])
    steps_per_epoch = -(-report["train_examples"] // cfg.batch_size)
    if report["stopped_early"]:
        assert report["steps"] < steps_per_epoch * cfg.epochs
    else:
        assert report["steps"] == steps_per_epoch * cfg.epochs
    assert [e["step"] for e in report["evaluations"]][-1] == report["steps"]
    best = max(report["evaluations"], key=lambda e: e["val_macro_f1"])
    assert report["best_validation"] == best
    cm = np.array(report["test"]["confusion"])
    assert cm.sum() == len(load_split("test")[0])
    assert report["test"]["macro_f1"] == pytest.approx(
        metrics.macro_f1_from_confusion(cm), abs=1e-9
    )
    assert report["test"]["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-9)
    assert record["elapsed_seconds"] >= report["wall_seconds"] >= report["train_seconds"]


# ---------------------------------------------------------------------------------------- exercises
def test_checkers_accept_reference_and_reject_wrong(capsys):
    assert batching.check_pad_to_longest(batching.pad_to_longest) is batching.pad_to_longest
    wrong_pad = lambda seqs, pad_id=0: batching.pad_to_longest(seqs, 0)  # noqa: E731
    assert batching.check_pad_to_longest(wrong_pad) is batching.pad_to_longest
    assert "pad_id" in capsys.readouterr().out

    def mine(cm):
        cm = np.asarray(cm, dtype=float)
        tp = np.diag(cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            p, r = np.nan_to_num(tp / cm.sum(0)), np.nan_to_num(tp / cm.sum(1))
            return float(np.nan_to_num(2 * p * r / (p + r)).mean())

    assert metrics.check_macro_f1(mine) is mine
    micro = lambda cm: float(np.trace(np.asarray(cm)) / np.asarray(cm).sum())  # noqa: E731
    assert metrics.check_macro_f1(micro) is metrics.macro_f1_from_confusion

    def unsolved(*a):
        raise NotImplementedError

    assert train_checks.check_warmup_linear_factor(unsolved) is schedules.warmup_linear_factor
    assert "[skipped]" in capsys.readouterr().out
    assert (
        train_checks.check_warmup_linear_factor(schedules.warmup_linear_factor)
        is schedules.warmup_linear_factor
    )


# ---------------------------------------------------------------------------------------- baselines
def test_baselines_on_tiny_data():
    from course_lib import baselines

    maj = baselines.majority_baseline([0, 0, 1], [0, 1, 2])
    assert maj["predicted_label"] == 0 and maj["accuracy"] == pytest.approx(1 / 3)
    tf = baselines.tfidf_baseline(
        TEXTS, LABELS_IDS, TEXTS, LABELS_IDS, TEXTS, LABELS_IDS, c_grid=(1.0, 10.0)
    )
    assert tf["C"] in (1.0, 10.0) and tf["accuracy"] > 0.9  # memorises its own training data
    assert set(tf["validation_grid"]) == {"none", "balanced"}
    assert tf["class_weight"] in (None, "balanced") and tf["n_train"] == len(TEXTS)
    best = tf["validation_grid"][baselines.weighting_name(tf["class_weight"])][tf["C"]]
    assert (
        best
        == tf["validation_macro_f1"]
        == max(f for scores in tf["validation_grid"].values() for f in scores.values())
    )
    emb = baselines.mean_pooled_embeddings(TEXTS[:4])
    assert emb.shape == (4, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_tfidf_baseline_says_when_the_best_c_is_at_the_edge_of_its_grid():
    from course_lib import baselines

    args = (TEXTS, LABELS_IDS, TEXTS, LABELS_IDS, TEXTS, LABELS_IDS)
    tf = baselines.tfidf_baseline(*args, c_grid=(1.0, 10.0, 100.0), class_weights=(None,))
    # validation = training data: every C scores 1.0, the first (smallest) is kept, at the edge
    assert set(tf["validation_grid"]["none"].values()) == {1.0}
    assert tf["C"] == 1.0 and not tf["best_c_inside_grid"]
    assert list(tf["validation_grid"]) == ["none"]


def test_frozen_features_are_mean_cls_and_pooler_of_one_forward_pass():
    from transformers import AutoModel, AutoTokenizer

    from course_lib import baselines
    from course_lib.models import resolve_model

    feats = baselines.frozen_features(TEXTS[:3])
    assert sorted(feats) == ["cls", "mean", "pooler"]
    folder = resolve_model("minilm")
    tok, enc = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = enc(**tok(TEXTS[:1], return_tensors="pt"))
    unit = torch.nn.functional.normalize
    assert np.allclose(feats["cls"][0], unit(out.last_hidden_state[0, 0], dim=-1), atol=1e-5)
    assert np.allclose(feats["pooler"][0], unit(out.pooler_output[0], dim=-1), atol=1e-5)
    assert np.allclose(feats["mean"], baselines.mean_pooled_embeddings(TEXTS[:3]), atol=1e-6)


def test_mean_pooling_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from course_lib import baselines
    from course_lib.models import resolve_model

    st_model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    ref = st_model.encode(TEXTS[:4], normalize_embeddings=True)
    assert np.allclose(baselines.mean_pooled_embeddings(TEXTS[:4]), ref, atol=1e-4)


def test_early_stopping_keeps_the_best_weights(monkeypatch):
    """Validation macro-F1 goes 0.5, 0.7, 0.6, 0.4: with patience 2 training stops after the 4th
    evaluation and the weights of the 2nd come back."""
    scores = iter([0.5, 0.7, 0.6, 0.4, 0.3, 0.2])
    snapshots = []

    def fake_evaluate(model, *a, **k):
        snapshots.append(model.classifier.weight.detach().clone())
        return {"macro_f1": next(scores), "accuracy": 0.0, "loss": 0.0}

    monkeypatch.setattr(train, "evaluate", fake_evaluate)
    cfg = train.default_config(
        batch_size=4, epochs=3, evals_per_epoch=2, patience=2, train_size=None
    )
    r = train.fine_tune(TEXTS[:8], LABELS_IDS[:8], TEXTS[:2], LABELS_IDS[:2], cfg, progress=False)
    assert r.stopped_early and [e["val_macro_f1"] for e in r.evaluations] == [0.5, 0.7, 0.6, 0.4]
    assert r.best["val_macro_f1"] == 0.7 and len(r.history) == 4
    assert torch.equal(r.model.classifier.weight, snapshots[1])


def test_experiments_never_overwrite_the_default_model():
    assert finetuned.default_folder_for(train.default_config()).name == finetuned.DEFAULT_MODEL_NAME
    assert finetuned.default_folder_for(train.full_config()).name == finetuned.FULL_MODEL_NAME
    assert (
        finetuned.default_folder_for(train.default_config(lr=1e-4)).name == "minilm-tweets-custom"
    )


def test_reuse_loads_only_a_model_trained_with_the_same_config(tiny_run, tmp_path):
    from dataclasses import asdict

    config = tiny_run.config
    summary = {
        "config": asdict(config),
        "history": tiny_run.history,
        "evaluations": tiny_run.evaluations,
        "best_validation": tiny_run.best,
        "train_seconds": 1.0,
        "eval_seconds": 0.5,
        "stopped_early": False,
    }
    folder = artifacts.save_classifier(tiny_run.model, tiny_run.tokenizer, tmp_path / "m", summary)
    reused = finetuned._reused_result(config, folder)
    assert reused is not None and reused.history == tiny_run.history
    assert torch.equal(reused.model.classifier.weight, tiny_run.model.classifier.weight)
    assert finetuned._reused_result(train.default_config(lr=1e-3), folder) is None
    assert finetuned._reused_result(config, tmp_path / "missing") is None


# ---------------------------------------------------------------------------------------- the step
def test_training_step_checker_accepts_right_steps_and_explains_wrong_ones(capsys):
    assert train_checks.check_training_step(train.training_step) is train.training_step

    def zero_first(model, batch, optimizer, scheduler, grad_clip):  # also right: clear, then go
        optimizer.zero_grad()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        return loss  # a 0-d tensor counts as a number

    assert train_checks.check_training_step(zero_first) is zero_first
    assert "[correct]" in capsys.readouterr().out

    def never_cleared(model, batch, optimizer, scheduler, grad_clip):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        return loss.item()

    assert train_checks.check_training_step(never_cleared) is train.training_step
    out = capsys.readouterr().out
    assert "[not yet]" in out and "three batches in a row" in out and "zero_grad" in out
    assert "one batch: the weights" not in out  # the one-batch checks pass

    def unclipped(model, batch, optimizer, scheduler, grad_clip):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        return loss.item()

    assert train_checks.check_training_step(unclipped) is train.training_step
    out = capsys.readouterr().out
    assert "clipped to gradient norm 0.01" in out and "three batches" not in out

    def no_schedule(model, batch, optimizer, scheduler, grad_clip):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    assert train_checks.check_training_step(no_schedule) is train.training_step
    out = capsys.readouterr().out
    assert "one batch: the learning rate after your step" in out and "scheduler.step()" in out
    assert "the loss you return" not in out

    def returns_nothing(model, batch, optimizer, scheduler, grad_clip):
        train.training_step(model, batch, optimizer, scheduler, grad_clip)

    assert train_checks.check_training_step(returns_nothing) is train.training_step
    assert "returned NoneType; expected the batch's loss as a number" in capsys.readouterr().out

    def unsolved(*a):
        raise NotImplementedError

    assert train_checks.check_training_step(unsolved) is train.training_step
    assert "[skipped]" in capsys.readouterr().out


def test_fine_tune_takes_exactly_training_steps(tmp_path):
    """The loop's step is ``training_step``: the same batches through it give the same losses and
    the same weights, number for number (a tiny BERT without dropout)."""
    from course_lib import distributed

    folder = distributed.tiny_bert_folder(tmp_path / "tiny")
    cfg = train.default_config(
        model=str(folder),
        batch_size=4,
        train_size=None,
        evals_per_epoch=1,
        freeze_layers=1,
        max_steps=3,
    )
    run = train.fine_tune(TEXTS, LABELS_IDS, TEXTS[:4], LABELS_IDS[:4], cfg, progress=False)

    torch.manual_seed(cfg.seed)
    model, tok = train.load_pretrained_classifier(cfg.model)
    train.freeze_lower_layers(model, cfg.freeze_embeddings, cfg.freeze_layers)
    model.train()
    ids = batching.encode(tok, TEXTS, cfg.max_length)
    batches = batching.length_bucketed_batches(
        [len(s) for s in ids], cfg.batch_size, seed=cfg.seed, bucket_batches=cfg.bucket_batches
    )[:3]
    optimizer = train.make_optimizer(model, cfg.lr, cfg.weight_decay)
    warmup = round(cfg.warmup_ratio * 3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedules.warmup_linear_factor(s, warmup, 3)
    )
    losses = [
        train.training_step(
            model,
            batching.pad_batch([ids[j] for j in b], [LABELS_IDS[j] for j in b], tok.pad_token_id),
            optimizer,
            scheduler,
            cfg.grad_clip,
        )
        for b in batches
    ]
    assert losses == [h["loss"] for h in run.history]
    for (name, a), b in zip(model.named_parameters(), run.model.parameters()):
        assert torch.equal(a, b), name


def test_tiny_classifier_for_checks_is_small_and_deterministic():
    a, b = train_checks.tiny_classifier_for_checks(), train_checks.tiny_classifier_for_checks()
    assert sum(p.numel() for p in a.parameters()) < 10_000
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


# ---------------------------------------------------------------------------------------- figures
def _legend_below_axes(fig, ax) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0


def test_learning_curves_figure(tiny_run):
    import matplotlib

    matplotlib.use("Agg")
    fig = learning_curves.plot_learning_curves(tiny_run, baseline_f1=0.5)
    loss_ax, lr_ax, f1_ax = fig.axes
    assert loss_ax.get_ylabel() == "cross-entropy" and lr_ax.get_ylabel() == "learning rate"
    assert f1_ax.get_ylabel() == "validation macro-F1"
    assert all(ax.get_xlabel() == "optimizer step" for ax in fig.axes)
    assert [t.get_text() for t in f1_ax.get_legend().get_texts()] == [
        "fine-tuned",
        "TF-IDF (validation)",
    ]
    assert _legend_below_axes(fig, f1_ax)


def test_compared_runs_include_the_record_and_keep_legends_off_the_data(
    tiny_run, tmp_path, monkeypatch
):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tmp_path))  # no FULL model of yours here
    monkeypatch.delenv("COURSE_FULL", raising=False)
    test = metrics.evaluate(tiny_run.model, tiny_run.tokenizer, TEXTS[:6], LABELS_IDS[:6])
    runs = learning_curves.runs_to_compare(tiny_run, test)
    assert list(runs)[0] == "default (this notebook)" and list(runs)[1].startswith("FULL (rec")
    assert len(runs) == 2
    fig = learning_curves.plot_compared_runs(runs, baseline_f1=0.75)
    curves, bars = fig.axes
    assert curves.get_ylabel() == "validation macro-F1" and bars.get_ylabel() == "test F1"
    assert _legend_below_axes(fig, curves) and _legend_below_axes(fig, bars)


def test_confusion_matrix_figure():
    import matplotlib

    matplotlib.use("Agg")
    fig = metrics.plot_confusion_matrix([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    counts, shares = fig.axes[:2]
    assert len(fig.axes) == 4  # two panels, two colourbars
    assert counts.get_xlabel() == "predicted class" and counts.get_ylabel() == "true class"
    assert "5" in [t.get_text() for t in counts.texts]
    assert "0.83" in [t.get_text() for t in shares.texts]  # 5 of the 6 negatives
    with pytest.raises(ValueError, match=r"expected \(3, 3\)"):
        metrics.plot_confusion_matrix([[1, 2], [3, 4]])
