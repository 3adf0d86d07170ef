"""course_lib.sharding: who trains on which examples under DDP, the scaling rule, and the
lesson-08 exercise checkers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import batching, sharding


# --------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 120),
    world_size=st.integers(1, 4),
    accumulation=st.integers(1, 3),
    extra=st.integers(0, 9),
    seed=st.integers(0, 5),
    data=st.data(),
)
def test_every_example_exactly_once_per_epoch_across_ranks(
    n, world_size, accumulation, extra, seed, data
):
    lengths = data.draw(st.lists(st.integers(2, 60), min_size=n, max_size=n))
    batch_size = world_size * accumulation + extra
    epochs = [
        sharding.rank_batches(lengths, batch_size, r, world_size, accumulation, seed, 2)
        for r in range(world_size)
    ]
    # every rank takes the same number of optimizer steps (else the all-reduces would not pair)
    assert len({len(e) for e in epochs}) == 1
    seen = [i for e in epochs for step in e for part, w in step if w > 0 for i in part]
    assert sorted(seen) == list(range(n))
    globals_ = batching.length_bucketed_batches(lengths, batch_size, True, seed, 2)
    for s, batch in enumerate(globals_):
        parts = [p for e in epochs for p in e[s]]
        assert all(len(p) == accumulation for e in epochs for p in [e[s]])
        # the parts of a step are exactly its global batch (length bucketing is kept) ...
        assert sorted(i for p, w in parts if w > 0 for i in p) == sorted(batch)
        # ... and their weights make DDP's average of the weighted losses the batch mean
        # (1/world) sum_p w_p mean_p = sum_p (n_p/n) mean_p: each part weighs its share
        assert all(w / world_size == pytest.approx(len(p) / len(batch)) for p, w in parts if w)
        assert sum(w for p, w in parts) / world_size == pytest.approx(1.0)


def test_rank_parts_are_strided_and_uneven_batches_get_a_zero_weight_stand_in():
    assert sharding.batch_parts(list(range(10, 18)), rank=1, world_size=2) == [
        ([11, 13, 15, 17], 1.0)
    ]
    # 3 examples over 4 ranks: rank 3 has nothing, so it runs example 7 with weight 0
    assert sharding.batch_parts([7, 8, 9], rank=3, world_size=4) == [([7], 0.0)]
    parts = sharding.batch_parts([1, 2, 3, 4, 5], rank=0, world_size=2, accumulation_steps=2)
    assert parts == [([1, 5], 2 * 2 / 5), ([3], 2 * 1 / 5)]


def test_sampler_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="rank 2, world_size 2"):
        sharding.batch_parts([1, 2], rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size 3 cannot be split"):
        sharding.rank_batches([5] * 10, 3, 0, 2, 2)


def test_scaled_hyperparameters_linear_and_sqrt_rules():
    s = sharding.scaled_hyperparameters(32, 1e-4, world_size=8, base_world_size=2)
    assert s["global_batch"] == 256 and s["steps_factor"] == 0.25
    assert s["lr_linear"] == pytest.approx(4e-4) and s["lr_sqrt"] == pytest.approx(2e-4)


def test_steps_per_epoch_when_the_number_of_examples_is_given():
    s = sharding.scaled_hyperparameters(32, 5e-5, world_size=8, train_examples=24663)
    assert s["global_batch"] == 256 and s["steps_per_epoch"] == 97  # 96 full steps + 1 of 87
    assert "steps_per_epoch" not in sharding.scaled_hyperparameters(32, 5e-5, 8)


# --------------------------------------------------------------------------------------------
# Exercise checkers (lesson 08)
# --------------------------------------------------------------------------------------------
def _reference_share(batch, rank, world_size):
    share = list(batch[rank::world_size])
    if not share:
        return [batch[0]], 0.0
    return share, world_size * len(share) / len(batch)


def _unsolved(*args):
    raise NotImplementedError("exercise not solved yet")


def test_rank_share_checker_accepts_a_right_answer_and_returns_it(capsys):
    assert sharding.check_rank_share(_reference_share) is _reference_share
    assert "[correct]" in capsys.readouterr().out


def test_rank_share_checker_explains_a_missing_loss_weight(capsys):
    def no_weight(batch, rank, world_size):  # the indices are right, every weight is 1
        return list(batch[rank::world_size]) or [batch[0]], 1.0

    use = sharding.check_rank_share(no_weight)
    out = capsys.readouterr().out
    assert "[not yet]" in out and "rank 0 of 2, batch of 7" in out
    assert "[1] returned 1.0, which is too small" in out  # the weight, not the indices
    assert "1.142857" not in out and "The answer here" not in out  # 8/7 is not given away
    sharding.check_rank_share(no_weight, show_answer=True)
    assert "The answer here: ([10, 12, 14, 16], 1.142857143)." in capsys.readouterr().out
    assert use is not no_weight and use(list(range(7)), 0, 2) == ([0, 2, 4, 6], 8 / 7)


def test_rank_share_checker_skips_an_unsolved_exercise(capsys):
    use = sharding.check_rank_share(_unsolved)
    assert "[skipped]" in capsys.readouterr().out
    assert use([7, 8, 9], 3, 4) == ([7], 0.0)


def _reference_scale(batch_per_rank, lr, world_size, train_examples):
    global_batch = batch_per_rank * world_size
    return global_batch, -(-train_examples // global_batch), lr * world_size


def test_scaling_checker_accepts_a_right_answer_and_returns_it(capsys):
    assert sharding.check_scaled_hyperparameters(_reference_scale) is _reference_scale
    assert "[correct]" in capsys.readouterr().out


def test_scaling_checker_explains_a_wrong_answer(capsys):
    def floor_steps_same_lr(batch_per_rank, lr, world_size, train_examples):
        global_batch = batch_per_rank * world_size
        return global_batch, train_examples // global_batch, lr  # last step lost, lr not scaled

    use = sharding.check_scaled_hyperparameters(floor_steps_same_lr)
    out = capsys.readouterr().out
    assert "[not yet]" in out and "2 ranks, 1,000 examples" in out
    assert "[1] returned 15, which is too small" in out and "(64, 16, 0.0002)" not in out
    sharding.check_scaled_hyperparameters(floor_steps_same_lr)  # the second wrong try
    assert "The answer here: (64, 16, 0.0002)." in capsys.readouterr().out
    assert use(32, 5e-5, 8, 24663) == (256, 97, pytest.approx(4e-4))


def test_scaling_checker_skips_an_unsolved_exercise(capsys):
    use = sharding.check_scaled_hyperparameters(_unsolved)
    assert "[skipped]" in capsys.readouterr().out
    assert use(32, 1e-4, 2, 1000) == (64, 16, pytest.approx(2e-4))
