"""Lesson 09: the Llama-style decoder against transformers' LlamaForCausalLM, generation, the KV
cache, the tokenizer, training and the baselines. Tiny configurations only."""

import json
import math

import pytest
import torch

from course_lib import gpt, gpt_hf, gpt_train
from course_lib.generation import (
    cache_nbytes,
    check_kv_cache_bytes,
    check_top_k_filter,
    generate,
    generate_text,
    generation_widget,
    kv_cache_bytes,
    kv_cache_speedups,
    next_token,
    seven_b_estimates,
    top_k_filter,
    top_p_filter,
)
from course_lib.positional import apply_rope

TINY = gpt.GPTConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, d_ff=48, max_positions=64)
TEXTS = [
    "my flight was delayed again",
    "the crew was lovely",
    "self-driving cars are the future",
    "i love coachella so much",
    "lost my bag in chicago",
    "what a great game tonight",
] * 5


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ours = gpt.GPT(TINY).eval()
    return ours, gpt_hf.to_hf(ours)


@pytest.fixture(scope="module")
def tokenizer():
    return gpt_train.train_tokenizer(TEXTS, vocab_size=300)


def untrained_tiny_gpt(tokenizer) -> gpt.GPT:
    """A one-layer decoder with seed-0 random weights over ``tokenizer``'s vocabulary."""
    torch.manual_seed(0)
    return gpt.GPT(
        gpt.GPTConfig(vocab_size=len(tokenizer), d_model=32, n_layers=1, n_heads=2, d_ff=40)
    )


def _ids(B=3, L=9, seed=1):
    return torch.randint(3, TINY.vocab_size, (B, L), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- parts


def test_config_rejects_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="n_heads"):
        gpt.GPTConfig(d_model=30, n_heads=4)


def test_rmsnorm_equals_llama_rmsnorm():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    ours, ref = gpt.RMSNorm(16, 1e-6), LlamaRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ref.weight.copy_(ours.weight)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)


def test_rotary_is_positional_apply_rope_in_the_half_layout():
    x = torch.randn(2, 4, 7, 8)
    cos, sin = gpt.rope_tables(torch.arange(7).expand(2, 7), 8, 10000.0)
    expected = apply_rope(x, torch.arange(7), interleaved=False)
    torch.testing.assert_close(gpt.apply_rotary(x, cos, sin), expected, atol=1e-6, rtol=0)


def test_decoder_mask_is_causal_for_the_last_queries_and_hides_pads():
    m = gpt.decoder_mask(2, 4, torch.tensor([[0, 1, 1, 1]]))
    assert m.shape == (1, 1, 2, 4)
    assert m[0, 0].tolist() == [[False, True, True, False], [False, True, True, True]]
    with pytest.raises(ValueError, match="attention_mask"):
        gpt.decoder_mask(2, 4, torch.ones(1, 3))


def test_position_ids_count_real_tokens_only():
    pos = gpt.position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))
    assert pos.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_name_map_covers_every_parameter_of_both_models(pair):
    ours, hf = pair
    names = gpt_hf.hf_name_map(TINY.n_layers)
    assert set(names) == set(ours.state_dict())
    assert set(names.values()) | {"lm_head.weight"} == set(hf.state_dict())


# ---------------------------------------------------------------- equal to the reference


def test_logits_equal_llama_for_causal_lm(pair):
    ours, hf = pair
    ids = _ids()
    with torch.no_grad():
        diff = (ours(ids).logits - hf(ids).logits).abs().max().item()
    assert diff < 1e-5


def test_logits_equal_llama_with_left_padding(pair):
    ours, hf = pair
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[1, :3], mask[2, :6] = 0, 0
    pos = gpt.position_ids_from_mask(mask)
    with torch.no_grad():
        a = ours(ids, attention_mask=mask).logits
        b = hf(ids, attention_mask=mask, position_ids=pos).logits
    real = mask.bool()
    assert (a - b)[real].abs().max().item() < 1e-5
    # and a padded prompt gives the same logits as the same prompt alone
    with torch.no_grad():
        alone = ours(ids[2:, 6:]).logits
    assert (a[2, 6:] - alone[0]).abs().max().item() < 1e-5


def test_rope_scores_ignore_a_shift_of_every_position(pair):
    """Left padding without position ids counted from the first real token shifts a prompt's
    positions by the number of pads; RoPE's scores depend only on offsets, so only float rounding
    changes. Forgetting the attention mask, by contrast, changes the logits."""
    ours, _ = pair
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[1, :3], mask[2, :6] = 0, 0
    shifted = torch.arange(ids.shape[1]).expand_as(ids)  # pads counted as positions
    real = mask.bool()
    with torch.no_grad():
        counted = ours(ids, attention_mask=mask).logits
        late = ours(ids, attention_mask=mask, position_ids=shifted).logits
        no_mask = ours(ids).logits
    assert (counted - late)[real].abs().max().item() < 1e-5
    assert (counted - no_mask)[real].abs().max().item() > 1e-3


def test_from_hf_copies_exactly(pair):
    ours, hf = pair
    back = gpt_hf.from_hf(hf)
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(back(ids).logits, ours(ids).logits)


def test_next_token_loss_equals_hugging_face_loss(pair):
    ours, hf = pair
    ids = gpt.right_padded([[1, 5, 6, 7, 2], [1, 8, 2]])
    labels = ids.masked_fill(ids == 0, -100)
    with torch.no_grad():
        ref = hf(ids, labels=labels).loss
        got = gpt.next_token_loss(ours(ids).logits, ids)
    assert abs(got.item() - ref.item()) < 1e-5


def test_perplexity_is_exp_of_the_mean_loss(pair):
    ours, _ = pair
    rows = [[1, 5, 6, 7, 2], [1, 8, 2], [1, 9, 10, 2]]
    ids = gpt.right_padded(rows)
    with torch.no_grad():
        loss = gpt.next_token_loss(ours(ids).logits, ids)
    assert gpt.perplexity(ours, rows, batch_size=2) == pytest.approx(
        math.exp(loss.item()), rel=1e-5
    )


def test_add_k_sweep_gives_ngram_perplexities_for_each_k():
    train = [[1, 3, 2], [1, 3, 2], [1, 4, 2], [1, 3, 4, 2]]
    val = [[1, 3, 2], [1, 4, 3, 2]]
    ks = (0.001, 0.1, 1.0)
    sweep = gpt_train.add_k_sweep(train, val, vocab_size=6, ks=ks)
    assert [r["k"] for r in sweep] == list(ks)
    for row, k in zip(sweep, ks):
        one = gpt_train.ngram_perplexities(train, val, vocab_size=6, k=k)
        assert row["bigram"] == pytest.approx(one["bigram"])
        assert row["unigram"] == pytest.approx(one["unigram"])
    # the unseen pair (4, 3) costs a lot with a tiny k: more smoothing helps here
    assert sweep[0]["bigram"] > sweep[1]["bigram"]


def test_ngram_perplexities_by_hand():
    train = [[1, 3, 2], [1, 3, 2], [1, 4, 2]]
    val = [[1, 3, 2]]
    got = gpt_train.ngram_perplexities(train, val, vocab_size=5, k=1.0)
    # unigram counts of predicted tokens: 3:2, 4:1, 2:3 (N = 6); p = (c + 1) / (6 + 5)
    uni = math.exp(-(math.log(3 / 11) + math.log(4 / 11)) / 2)
    # bigram: p(3|1) = (2+1)/(3+5), p(2|3) = (2+1)/(2+5)
    bi = math.exp(-(math.log(3 / 8) + math.log(3 / 7)) / 2)
    assert got["unigram"] == pytest.approx(uni)
    assert got["bigram"] == pytest.approx(bi)
    assert got["tokens"] == 2


# ---------------------------------------------------------------- sampling filters


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    out = top_k_filter(logits, 2)
    assert torch.isinf(out).tolist() == [[True, False, False, True]]
    assert torch.equal(top_k_filter(logits, 9), logits)
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.05, 0.5, 0.15, 0.3]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[False, True, False, True]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[False, True, True, True]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [[False, True, False, False]]
    with pytest.raises(ValueError):
        top_p_filter(logits, 0.0)


def test_next_token_greedy_and_seeded_sampling():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert next_token(logits, temperature=0).tolist() == [1, 0]
    draw = [next_token(logits, 1.0, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(draw[0], draw[1])
    # top_k=1 leaves one token to sample: the same as greedy, whatever the seed
    assert next_token(logits, 1.5, top_k=1).tolist() == [1, 0]
    with pytest.raises(ValueError):
        next_token(logits, temperature=-1)


def test_sampling_follows_the_filtered_distribution():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(20000, 4)
    tokens = next_token(logits, 1.0, top_p=0.8, generator=torch.Generator().manual_seed(0))
    share = torch.bincount(tokens, minlength=4) / len(tokens)
    assert share[2:].sum() == 0
    assert abs(share[0].item() - 0.5 / 0.8) < 0.02


# ---------------------------------------------------------------- generation and the KV cache


def test_cached_step_logits_equal_the_full_forward(pair):
    ours, _ = pair
    ids = _ids(B=2, L=8)
    with torch.no_grad():
        full = ours(ids).logits
        out = ours(ids[:, :5])
        steps = [out.logits]
        for t in range(5, 8):
            out = ours(ids[:, t : t + 1], cache=out.cache)
            steps.append(out.logits)
    assert (torch.cat(steps, dim=1) - full).abs().max().item() < 1e-5


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generation_with_cache_equals_recomputing_the_prefix(pair, temperature):
    ours, _ = pair
    ids = _ids(B=3, L=6)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # a shorter, left-padded prompt
    kw = dict(max_new_tokens=12, temperature=temperature, top_k=20, seed=3, eos_token_id=-1)
    fast = generate(ours, ids, attention_mask=mask, use_cache=True, **kw)
    slow = generate(ours, ids, attention_mask=mask, use_cache=False, **kw)
    assert fast.shape == (3, 18)
    assert torch.equal(fast, slow)


def test_generation_stops_at_eos(pair):
    ours, _ = pair
    ids = _ids(B=1, L=4)
    first = generate(ours, ids, 1, temperature=0)[0, -1].item()
    out = generate(ours, ids, 10, temperature=0, eos_token_id=first)
    assert out.shape == (1, 5) and out[0, -1].item() == first


def test_kv_cache_size_formula_matches_a_real_cache(pair):
    ours, _ = pair
    out = ours(_ids(B=2, L=7))
    expected = kv_cache_bytes(TINY.n_layers, TINY.n_heads, TINY.d_head, 7, 2, 4)
    assert cache_nbytes(out.cache) == expected


def test_kv_cache_speedups_are_measured_ratios(pair):
    ours, _ = pair
    rows = kv_cache_speedups(ours, lengths=(4, 8), repeats=1)
    assert [r["tokens"] for r in rows] == [4, 8]
    for r in rows:
        assert r["speedup"] == pytest.approx(r["no_cache_s"] / r["cache_s"])


def test_seven_b_estimates_follow_the_formulas():
    fp16, int8, int8_cache = seven_b_estimates(context=4096, bandwidth_gb_s=100.0)
    assert fp16["weights_GB"] == pytest.approx(13.48)
    assert int8["weights_GB"] == int8_cache["weights_GB"] == pytest.approx(6.74)
    assert fp16["kv_cache_GB"] == pytest.approx(2 * 32 * 32 * 128 * 4096 * 2 / 1e9)
    # int8 weights leave the cache at fp16 unless the cache is quantised too
    assert int8["kv_cache_GB"] == fp16["kv_cache_GB"] == 2 * int8_cache["kv_cache_GB"]
    assert fp16["max_tokens_per_s"] == pytest.approx(100 / 13.48)
    assert int8["max_tokens_per_s"] == int8_cache["max_tokens_per_s"]


# ---------------------------------------------------------------- tokenizer, saving, pipeline


def test_tokenizer_adds_bos_lowercases_and_round_trips(tokenizer):
    ids = tokenizer("My Flight")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == "my flight"
    rows = gpt_train.encode_tweets(tokenizer, ["my flight was delayed again"], max_len=64)
    assert rows[0][0] == 1 and rows[0][-1] == tokenizer.eos_token_id == 2
    assert len(gpt_train.encode_tweets(tokenizer, ["my flight was delayed again"], 3)[0]) == 3


def test_bpe_steps_apply_the_learned_merges_down_to_the_tokenizers_split(tokenizer):
    merges = gpt_train.bpe_merges(tokenizer)
    assert len(merges) == len(tokenizer) - 3 - 256  # every token past the bytes is one merge
    for word in ("delayed", " flight", "Chicago", " self", "zzz"):
        steps = gpt_train.bpe_steps(tokenizer, word)
        assert steps[-1] == tokenizer.tokenize(word)
        assert "".join(steps[0]) == "".join(steps[-1]) and all(len(s) == 1 for s in steps[0])
        assert [len(s) for s in steps] == sorted((len(s) for s in steps), reverse=True)
    assert len(gpt_train.bpe_steps(tokenizer, " flight")) > 2  # merges did happen
    with pytest.raises(ValueError, match="one word"):
        gpt_train.bpe_steps(tokenizer, "my flight")


def test_save_reload_and_pipeline(tmp_path, tokenizer):
    from transformers import pipeline

    model = untrained_tiny_gpt(tokenizer)
    folder = gpt_hf.save_pretrained(model, tokenizer, tmp_path / "m", {"config": {}})
    back, tok = gpt_hf.load_pretrained(folder)
    ids = tok(["my flight"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)
    pipe = pipeline("text-generation", model=str(folder), device="cpu")
    text = pipe("my flight", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert text.startswith("my flight")
    ours = generate_text(back, tok, "my flight", max_new_tokens=5, temperature=0)[0]
    assert ours.replace(" ", "") == text.replace(" ", "")  # same greedy continuation


def test_train_gpt_learns_and_trained_gpt_reuses(tmp_path, monkeypatch, capsys):
    cfg = gpt_train.GPTTrainConfig(
        vocab_size=300, d_model=32, n_layers=1, n_heads=2, d_ff=40, batch_size=8, steps=20,
        lr=1e-2, warmup_steps=2, eval_every=10, eval_tweets=12,
    )  # fmt: skip
    model, tok, log = gpt_train.train_gpt(TEXTS, TEXTS, cfg, progress=False)
    losses = [e["val_loss"] for e in log["evaluations"]]
    assert len(log["history"]) == 20 and losses[-1] < losses[0]
    folder = tmp_path / "gpt"
    gpt_hf.save_pretrained(model, tok, folder, {"config": gpt_train.asdict(cfg)})

    def no_training(*a, **k):
        raise AssertionError("should have reused the saved model")

    monkeypatch.setattr(gpt_train, "train_gpt", no_training)
    monkeypatch.setenv("COURSE_REUSE_MODELS", "1")
    gpt_train.trained_gpt(cfg, folder=folder, progress=False)
    assert "Reused" in capsys.readouterr().out
    other = gpt_train.GPTTrainConfig(**{**gpt_train.asdict(cfg), "steps": 21})
    with pytest.raises(AssertionError, match="reused"):  # a different config trains anew
        gpt_train.trained_gpt(other, folder=folder, progress=False)
    assert json.loads((folder / gpt_train.SUMMARY_FILE).read_text())["config"]["steps"] == 20


def test_widget_generates_three_samples(pair, tokenizer, capsys):
    model = untrained_tiny_gpt(tokenizer)
    box = generation_widget(model, tokenizer, "my flight", max_new_tokens=4)
    button = box.children[2]
    assert button.description == "Generate"
    button.click()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("> ")]
    assert len(lines) == 3 and all(ln.startswith("> my flight") for ln in lines)


# ---------------------------------------------------------------- exercise checkers


def test_top_k_checker_accepts_right_rejects_wrong_and_skips_unsolved(capsys):
    assert check_top_k_filter(top_k_filter, verbose=False) is top_k_filter

    def wrong(logits, k):  # keeps k + 1
        return top_k_filter(logits, k + 1) if k + 1 <= logits.shape[-1] else logits

    def unsolved(logits, k):
        raise NotImplementedError

    assert check_top_k_filter(wrong) is top_k_filter
    assert "[not yet]" in capsys.readouterr().out
    assert check_top_k_filter(unsolved) is top_k_filter
    assert "not solved yet" in capsys.readouterr().out


def test_kv_bytes_checker():
    assert check_kv_cache_bytes(kv_cache_bytes, verbose=False) is kv_cache_bytes

    def forgot_values(n_layers, n_kv_heads, d_head, positions, batch=1, bytes_per_value=2):
        return n_layers * n_kv_heads * d_head * positions * batch * bytes_per_value

    assert check_kv_cache_bytes(forgot_values, verbose=False) is kv_cache_bytes


def test_next_token_loss_checker_accepts_the_shift_and_catches_off_by_one(capsys):
    assert gpt.check_next_token_loss(gpt.next_token_loss, verbose=False) is gpt.next_token_loss

    def no_shift(logits, ids, pad_id=0):  # scores each position against its own token
        V = logits.shape[-1]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), ids.reshape(-1), ignore_index=pad_id
        )

    def pads_counted(logits, ids, pad_id=0):  # the shift is right, the pads are scored
        V = logits.shape[-1]
        return torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1)
        )

    def unsolved(logits, ids, pad_id=0):
        raise NotImplementedError

    assert gpt.check_next_token_loss(no_shift) is gpt.next_token_loss
    out = capsys.readouterr().out
    assert "[not yet]" in out and "one row of 5 tokens" in out
    assert gpt.check_next_token_loss(pads_counted) is gpt.next_token_loss
    out = capsys.readouterr().out
    assert "[not yet]" in out and "a batch with padding" in out
    assert gpt.check_next_token_loss(unsolved) is gpt.next_token_loss
    assert "not solved yet" in capsys.readouterr().out


def test_widget_generates_when_the_prompt_is_submitted(pair, tokenizer, capsys):
    """Enter in the prompt box (a new value, as continuous_update=False sends it) generates."""
    model = untrained_tiny_gpt(tokenizer)
    box = generation_widget(model, tokenizer, "my flight", max_new_tokens=4)
    prompt = box.children[0]
    assert prompt.continuous_update is False
    prompt.value = "the crew"
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("> ")]
    assert len(lines) == 3 and all(ln.startswith("> the crew") for ln in lines)


def test_each_generate_draws_new_samples(pair, tokenizer, capsys):
    """A second click gives three other samples (the next seeds), not the same three again."""
    model = untrained_tiny_gpt(tokenizer)
    box = generation_widget(model, tokenizer, "my flight", max_new_tokens=8)
    button = box.children[2]
    button.click()
    first = capsys.readouterr().out
    button.click()
    second = capsys.readouterr().out
    assert first.count("> ") == second.count("> ") == 3 and first != second
