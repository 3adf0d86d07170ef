import json
import zipfile

import pytest
import torch

from course_lib import artifacts, finetuned
from course_lib.tooling import packing


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 1-layer, 8-wide BERT classifier saved like lesson 05 saves its model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    root = tmp_path_factory.mktemp("tiny")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    config = BertConfig(
        **artifacts.tiny_bert_settings(vocab_size=7, hidden_size=8, max_position_embeddings=16),
        num_labels=3,
    )
    torch.manual_seed(0)
    folder = root / "minilm-tweets"
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(vocab_file=str(vocab)).save_pretrained(folder)
    (folder / "training_summary.json").write_text(json.dumps({"test": {"macro_f1": 0.5}}))
    return folder


def _logits(folder):
    model, tokenizer = artifacts.load_classifier(folder)
    with torch.no_grad():
        return model(**tokenizer(["good bad", "bad"], padding=True, return_tensors="pt")).logits


def test_pack_then_unpack_gives_the_same_model_and_lessons_skip_training(
    tiny_model, tmp_path, monkeypatch
):
    archive = packing.pack_model(tiny_model, tmp_path / "out" / "model.zip")
    manifest = packing.read_manifest(archive)
    assert manifest["model"] == "minilm-tweets"
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "training_summary.json"}

    artifacts = tmp_path / "laptop" / "artifacts"
    target = packing.unpack_model(archive, artifacts)
    assert target == artifacts / "minilm-tweets"
    assert torch.equal(_logits(tiny_model), _logits(target))
    # What lessons 06-10 call: with the model unpacked it is found, and nothing trains.
    monkeypatch.setenv("COURSE_ARTIFACTS", str(artifacts))
    monkeypatch.setattr(finetuned, "train_and_save", lambda *a, **k: pytest.fail("trained"))
    assert finetuned.finetuned_model(train_if_missing=True) == target
    assert finetuned.training_summary(target)["test"]["macro_f1"] == 0.5


def test_unpack_refuses_to_replace_a_model_unless_forced(tiny_model, tmp_path):
    archive = packing.pack_model(tiny_model, tmp_path / "model.zip")
    packing.unpack_model(archive, tmp_path / "a")
    (tmp_path / "a" / "minilm-tweets" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--force"):
        packing.unpack_model(archive, tmp_path / "a")
    packing.unpack_model(archive, tmp_path / "a", force=True)
    assert (tmp_path / "a" / "minilm-tweets" / "config.json").read_text() != "{}"


def _rewrite(archive, out, change):
    """Copy ``archive`` to ``out`` passing each (name, bytes) through ``change``."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            for new_name, data in change(name, src.read(name)):
                dst.writestr(new_name, data)
    return out


def test_damaged_or_foreign_archives_are_refused_and_leave_nothing(tiny_model, tmp_path):
    archive = packing.pack_model(tiny_model, tmp_path / "model.zip")
    flipped = _rewrite(
        archive,
        tmp_path / "flipped.zip",
        lambda n, d: [(n, d[:-1] + bytes([d[-1] ^ 1]) if n.endswith(".safetensors") else d)],
    )
    sneaky = _rewrite(
        archive,
        tmp_path / "sneaky.zip",
        lambda n, d: [(n, d)] + ([("../evil.py", b"x")] if n.endswith("/config.json") else []),
    )
    missing = _rewrite(
        archive,
        tmp_path / "missing.zip",
        lambda n, d: [] if n.endswith("model.safetensors") else [(n, d)],
    )
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    cases = [
        (flipped, "damaged"),
        (sneaky, "unexpected member '../evil.py'"),
        (missing, "lacks minilm-tweets/model.safetensors"),
        (not_zip, "not a model archive"),
    ]
    for bad, message in cases:
        dest = tmp_path / f"dest-{bad.stem}"
        with pytest.raises(packing.ArchiveError, match=message):
            packing.unpack_model(bad, dest)
        assert not (dest / "minilm-tweets").exists()
        assert not (tmp_path / "evil.py").exists()


def test_pack_of_an_unfinished_folder_says_how_to_train(tmp_path):
    (tmp_path / "minilm-tweets").mkdir()
    with pytest.raises(FileNotFoundError, match="missing config.json, model.safetensors"):
        packing.pack_model(tmp_path / "minilm-tweets", tmp_path / "m.zip")


def test_cli_round_trip(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_ARTIFACTS", str(tiny_model.parent))
    archive = tmp_path / "hand-out.zip"
    assert packing.pack_main(["--out", str(archive)]) == 0
    assert packing.unpack_main([str(archive), "--dest", str(tmp_path / "new")]) == 0
    assert packing.unpack_main([str(archive), "--dest", str(tmp_path / "new")]) == 1
    out = capsys.readouterr().out
    assert "unpack-model hand-out.zip" in out and "exists already" in out
