"""course_lib.distributed: DDP's hooks into lesson 05's loop, the launcher, DDP under torchrun
against one process."""

import json
import time
from dataclasses import replace

import pytest
import torch

from course_lib import distributed, finetuned, train

TEXTS = [
    "I love this airline",
    "worst flight ever, delayed again and again and again",
    "flight 123 lands at 5pm",
    "great service, thank you!",
    "my bag is lost. terrible",
    "is the website down?",
    "amazing crew and snacks on the way to Boston",
    "cancelled and no refund",
    "what time is boarding",
    "best trip",
    "never again",
] * 3
LABELS_IDS = [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0] * 3


# --------------------------------------------------------------------------------------------
# One process: DDP's hooks degrade to lesson 05's plain loop
# --------------------------------------------------------------------------------------------
def test_single_process_is_rank_0_of_1_and_the_hooks_are_identities(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with distributed.process_group() as info:
        assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
        ranks = distributed.DDPRanks()
        assert (ranks.rank, ranks.world_size, ranks.is_main) == (0, 1, True)
        x = torch.tensor([1.5])
        assert ranks.average(x) is x and ranks.from_main(True) is True
        model = torch.nn.Linear(2, 2)
        assert ranks.wrap(model) is model
    assert distributed.threads_per_rank() is None
    assert distributed.backend_for(cuda=False) == "gloo"
    assert distributed.backend_for(cuda=True) == "nccl"


@pytest.mark.parametrize("accumulation", [1, 3])
def test_one_rank_gets_the_batches_of_lesson_05s_single_process(accumulation):
    lengths = [5, 9, 3, 12, 7, 8, 2, 11, 6, 4, 10]
    config = train.default_config(batch_size=4, grad_accumulation=accumulation)
    for epoch in (0, 1):
        assert distributed.DDPRanks().epoch_batches(lengths, config, epoch) == (
            train.SingleProcess().epoch_batches(lengths, config, epoch)
        )


def _ddp_mean_losses(ranks_class, monkeypatch, lengths, losses, config, world_size=2):
    """What DDP's all-reduce makes of every step: the mean over the ranks of each rank's
    weighted part losses (``torch.tensor`` of one value per optimizer step)."""
    per_rank = []
    for rank in range(world_size):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        steps = ranks_class().epoch_batches(lengths, config, epoch=0)
        per_rank.append([sum(w * losses[p].mean() for p, w in step) for step in steps])
    return torch.tensor(per_rank, dtype=torch.float64).mean(0)


def test_forgetting_the_loss_weights_breaks_the_batch_mean_only_on_uneven_batches(monkeypatch):
    """Lesson 08's deliberate mistake: with every weight 1, DDP's mean of the ranks' part means is
    the batch mean on a batch of 16 split 8/8, and not on a batch of 15 split 8/7."""
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 40, (45,), generator=g).tolist()
    losses = torch.rand(45, generator=g, dtype=torch.float64)
    for batch_size, uneven in ((15, True), (16, False)):
        config = train.default_config(batch_size=batch_size)
        batches = train.SingleProcess().epoch_batches(lengths, config, 0)
        batch_means = torch.stack([losses[parts[0][0]].mean() for parts in batches])
        exact = _ddp_mean_losses(distributed.DDPRanks, monkeypatch, lengths, losses, config)
        ones = _ddp_mean_losses(
            distributed.DDPRanksWithoutLossWeights, monkeypatch, lengths, losses, config
        )
        torch.testing.assert_close(exact, batch_means)
        full = [len(parts[0][0]) == batch_size for parts in batches]
        off = (ones - batch_means).abs()
        if uneven:  # every full batch of 15 is split 8/7: the plain mean of means is off
            assert all(off[i] > 1e-6 for i, f in enumerate(full) if f)
        else:
            assert all(off[i] < 1e-12 for i, f in enumerate(full) if f)
    assert set(distributed.LOSS_WEIGHTS) == {"exact", "ones"}


def test_a_failure_names_the_rank_whose_error_file_is_oldest(tmp_path):
    """Rank 1 raises; rank 0 then loses its connection to it and fails too, within the same
    second: the error files' own times say which came first."""
    for rank, error in ((1, "KeyError: 'no such column'"), (0, "RuntimeError: connection closed")):
        file = tmp_path / "run_x" / "attempt_0" / str(rank) / "error.json"
        file.parent.mkdir(parents=True)
        file.write_text(json.dumps({"message": {"message": error, "extraInfo": {}}}))
        time.sleep(0.01)
    err = distributed.failure_from(1, "", tmp_path)
    assert err.rank == 1 and str(err) == "rank 1 failed: KeyError: 'no such column'"


def test_a_failure_without_an_error_file_reads_torchrun_root_cause(tmp_path):
    output = (
        "Root Cause (first observed failure):\n[0]:\n"
        "  rank      : 3 (local_rank: 3)\n  exitcode  : -9 (pid: 1)\n"
        "  error_file: <N/A>\n  traceback : Signal 9 (SIGKILL) received by PID 1\n"
    )
    err = distributed.failure_from(1, output, tmp_path)
    assert err.rank == 3 and "rank 3 failed with exit code -9" in str(err)
    assert "reported no failing rank" in str(distributed.failure_from(1, "nothing useful"))


def test_torchrun_command_uses_this_python_and_no_shell():
    cmd = distributed.torchrun_command(["-m", "course_lib.distributed", "train"], nproc=3)
    assert cmd[:3] == [__import__("sys").executable, "-m", "torch.distributed.run"]
    assert (
        "--nproc-per-node=3" in cmd
        and "--standalone" in cmd
        and cmd[-3:] == ["-m", "course_lib.distributed", "train"]
    )


def test_config_overrides_from_the_command_line():
    cfg = train.default_config()
    got = train.config_overrides(
        cfg, ["batch_size=16", "lr=1e-3", "freeze_embeddings=false", "train_size=none"]
    )
    assert got == {"batch_size": 16, "lr": 1e-3, "freeze_embeddings": False, "train_size": None}
    with pytest.raises(ValueError, match="no_such_field"):
        train.config_overrides(cfg, ["no_such_field=1"])


def _tiny_config(**overrides):
    return train.default_config(
        model=str(distributed.tiny_bert_folder()),
        train_size=None,
        batch_size=8,
        evals_per_epoch=1,
        freeze_layers=0,
        max_length=32,
        lr=1e-3,
        **overrides,
    )


def test_gradient_accumulation_equals_the_large_batch():
    """Batch 8 in one part against 4 parts of 2: the same 4 optimizer steps, the same weights up to
    float32 rounding (the sums are taken in a different order)."""
    runs = [
        train.fine_tune(
            TEXTS,
            LABELS_IDS,
            TEXTS[:4],
            LABELS_IDS[:4],
            _tiny_config(grad_accumulation=a),
            progress=False,
        )
        for a in (1, 4)
    ]
    a, b = (r.model.state_dict() for r in runs)
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float(p.abs().max()) for p in a.values())
    assert len(runs[0].history) == len(runs[1].history) == 5
    assert diff < 1e-5 * moved
    assert runs[0].history[0]["loss"] == pytest.approx(runs[1].history[0]["loss"], rel=1e-5)


# --------------------------------------------------------------------------------------------
# torchrun
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.subprocess
def test_two_processes_give_the_parameters_of_one_process_on_the_same_global_batch(tmp_path):
    """2 ranks sharing every batch of 15 (8 and 7 examples) under torchrun against 1 process,
    both through lesson 05's recipe (``finetuned.train_and_save``): the same weights up to
    float32 reduction order (allowed 1e-5 of the largest weight, while 12 AdamW steps move
    weights by about 1e-2). The odd batch makes the loss weights matter at every step."""
    tiny = distributed.tiny_bert_folder()
    sets = ["model=" + str(tiny), "train_size=180", "batch_size=15", "evals_per_epoch=1"]
    sets += ["max_length=32", "freeze_layers=0", "lr=1e-3"]
    args = [a for s in sets for a in ("--set", s)]
    distributed.launch(
        ["-m", "course_lib.distributed", "train", *args, "--out", str(tmp_path / "ddp")],
        nproc=2,
        timeout_s=240,
        echo=False,
    )
    assert finetuned.training_summary(tmp_path / "ddp")["world_size"] == 2
    config = replace(train.default_config(), **train.config_overrides(train.default_config(), sets))
    finetuned.train_and_save(config, tmp_path / "one", progress=False, reuse=False)
    same = distributed.max_parameter_difference(tmp_path / "ddp", tmp_path / "one")
    moved = distributed.max_parameter_difference(tiny, tmp_path / "one")
    assert same["max_rel"] < 1e-5 and same["max_abs"] < 1e-3 * moved["max_abs"]
    assert moved["max_abs"] > 1e-3  # training did move the weights: the comparison means something


@pytest.mark.subprocess
def test_a_failing_rank_fails_the_launch_fast_and_names_the_rank():
    start = time.perf_counter()
    with pytest.raises(distributed.RankFailedError) as info:
        distributed.launch(
            ["-m", "course_lib.distributed", "fail", "--rank", "1"],
            nproc=2,
            timeout_s=90,
            echo=False,
        )
    elapsed = time.perf_counter() - start
    assert info.value.rank == 1
    assert "rank 1 failed: ValueError: a deliberate error on rank 1" in str(info.value)
    assert elapsed < 90  # the launch limit was not what ended it


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_hanging_rank_becomes_a_timeout_error_not_a_hang():
    """Rank 1 sleeps; rank 0's all-reduce gives up after COURSE_DIST_TIMEOUT = 5 s and fails."""
    start = time.perf_counter()
    with pytest.raises(distributed.RankFailedError) as info:
        distributed.launch(
            ["-m", "course_lib.distributed", "fail", "--rank", "1", "--hang"],
            nproc=2,
            timeout_s=120,
            echo=False,
            env={distributed.TIMEOUT_ENV: "5"},
        )
    assert info.value.rank == 0 and "Timed out" in str(info.value)
    assert time.perf_counter() - start < 120
