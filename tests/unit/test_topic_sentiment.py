"""Lesson 04's measurement of whether sentence similarity follows topic or sentiment."""

import itertools
import re

import pytest
import torch

from course_lib import inspection
from course_lib.data import LABELS, load_split


def _unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def _reference_means(emb, topics, sentiments):
    """Mean similarity over every pair i < j, by (same topic, same sentiment): a plain loop."""
    sums, counts = {}, {}
    for i, j in itertools.combinations(range(len(topics)), 2):
        key = (topics[i] == topics[j], sentiments[i] == sentiments[j])
        sums[key] = sums.get(key, 0.0) + float(emb[i] @ emb[j])
        counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sums}, counts


def test_group_means_equal_a_loop_over_the_pairs():
    g = torch.Generator().manual_seed(0)
    topics = [0, 0, 0, 1, 1, 1, 1, 0]
    sentiments = [0, 1, 1, 0, 1, 0, 1, 0]
    emb = _unit(torch.randn(8, 5, generator=g, dtype=torch.float64))
    result = inspection.similarity_by_topic_and_sentiment(emb, topics, sentiments, n_shuffles=3)
    means, counts = _reference_means(emb, topics, sentiments)
    assert result.pairs == counts and sum(counts.values()) == 8 * 7 // 2
    for key, mean in means.items():
        assert result.means[key] == pytest.approx(mean, abs=1e-12)
    within_gap = means[True, True] - means[True, False]
    assert result.gap == pytest.approx(within_gap, abs=1e-12)
    assert result.shuffled_gaps.shape == (3,)


def test_the_shuffles_tell_a_sentiment_direction_from_none():
    # 40 tweets per topic, half of each sentiment; vectors = topic + noise (+ sentiment)
    g = torch.Generator().manual_seed(1)
    topics = torch.tensor([0] * 40 + [1] * 40)
    sentiments = torch.tensor(([0] * 20 + [1] * 20) * 2)
    topic_dir, sentiment_dir = torch.eye(16)[0], torch.eye(16)[1]
    noise = torch.randn(80, 16, generator=g, dtype=torch.float64) * 0.5
    base = (2 * topics[:, None] - 1) * topic_dir + noise
    plain = inspection.similarity_by_topic_and_sentiment(_unit(base), topics, sentiments)
    low, high = plain.shuffled_gaps.min().item(), plain.shuffled_gaps.max().item()
    assert low - 0.01 <= plain.gap <= high + 0.01  # no sentiment in the vectors: a chance gap
    with_sentiment = base + (2 * sentiments[:, None] - 1) * sentiment_dir
    felt = inspection.similarity_by_topic_and_sentiment(_unit(with_sentiment), topics, sentiments)
    assert felt.gap > 0.1 > felt.shuffled_gaps.abs().max()
    assert felt.means[True, True] > felt.means[True, False] > felt.means[False, False]
    report = felt.report()
    assert "same topic" in report and "95% of 200 shuffles" in report


def test_bad_shapes_say_what_was_expected():
    with pytest.raises(ValueError, match=r"embeddings \(N, D\)"):
        inspection.similarity_by_topic_and_sentiment(torch.zeros(4, 3), [0, 1, 0], [0, 1, 0, 1])


def test_sample_holds_tweets_of_one_topic_and_the_asked_sentiment():
    texts, topics, sentiments = inspection.topic_sentiment_sample(per_group=6, seed=3)
    assert len(texts) == len(topics) == len(sentiments) == 6 * 2 * 2
    assert sorted(set(zip(topics, sentiments))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    label_of = dict(zip(*load_split("train")))
    patterns = [re.compile(p, re.IGNORECASE) for p in inspection.TOPICS.values()]
    for text, t, s in zip(texts, topics, sentiments):
        assert LABELS[label_of[text]] == ("negative", "positive")[s]
        assert [bool(p.search(text)) for p in patterns] == [t == 0, t == 1]
    assert len(set(texts)) == len(texts)
    with pytest.raises(ValueError, match="unknown sentiments"):
        inspection.topic_sentiment_sample(sentiments=("negative", "angry"))
    with pytest.raises(ValueError, match="asked for 100000"):
        inspection.topic_sentiment_sample(per_group=100_000)
