import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib import attention as A
from course_lib import multihead as M
from course_lib.multihead import MultiHeadAttention, masks_from_torch, merge_heads, split_heads

ATOL = 1e-5


def _pair(d_model=16, n_heads=4, bias=True, seed=0):
    """A torch.nn.MultiheadAttention (batch_first) and our copy of it, both in eval mode."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True).eval()
    with torch.no_grad():  # non-zero biases so a forgotten bias would show
        if bias:
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    return ref, MultiHeadAttention.from_torch(ref).eval()


def _close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


# ---------------------------------------------------------------- split / merge


def test_split_heads_shape_and_content():
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    h = split_heads(x, 4)
    assert h.shape == (2, 4, 3, 2)
    # head 1 holds features 2..3 of every position
    _close(h[:, 1], x[..., 2:4])


def test_merge_heads_inverts_split():
    x = torch.randn(2, 5, 12)
    out = merge_heads(split_heads(x, 3))
    assert out.shape == x.shape
    assert torch.equal(out, x)


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 3), L=st.integers(1, 6), H=st.integers(1, 6), d=st.integers(1, 5))
def test_split_merge_roundtrip_property(B, L, H, d):
    x = torch.randn(B, L, H * d)
    h = split_heads(x, H)
    assert h.shape == (B, H, L, d)
    for i in range(H):  # head i is exactly the i-th slice of the features
        assert torch.equal(h[:, i], x[..., i * d : (i + 1) * d])
    assert torch.equal(merge_heads(h), x)


@pytest.mark.parametrize(
    "x, n, words",
    [
        (torch.zeros(2, 3), 1, "(2, 3)"),
        (torch.zeros(2, 3, 10), 4, "(2, 3, 10)"),
        (torch.zeros(1, 2, 3, 4), 2, "(1, 2, 3, 4)"),
    ],
)
def test_split_heads_bad_shapes_name_the_shape(x, n, words):
    with pytest.raises(ValueError, match=r"\(B, L, D\)") as err:
        split_heads(x, n)
    assert words in str(err.value)


def test_split_heads_bad_head_count():
    with pytest.raises(ValueError, match="n_heads"):
        split_heads(torch.zeros(1, 2, 4), 0)


def test_merge_heads_bad_shape_names_the_shape():
    with pytest.raises(ValueError, match=r"got \(2, 3, 4\)"):
        merge_heads(torch.zeros(2, 3, 4))


# ---------------------------------------------------------------- equality with
# torch.nn.MultiheadAttention


def test_self_attention_equals_torch_with_per_head_weights():
    ref, ours = _pair()
    x = torch.randn(3, 6, 16)
    expected, expected_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    out, w = ours(x, need_weights=True)
    assert out.shape == (3, 6, 16) and w.shape == (3, 4, 6, 6)
    _close(out, expected)
    _close(w, expected_w)


def test_cross_attention_with_key_padding_and_bool_attn_mask_equals_torch():
    ref, ours = _pair(seed=1)
    q, kv = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    v = torch.randn(3, 7, 16)
    kpm_torch = A.padding_mask([7, 4, 2], 7)[:, 0] == 0  # torch: True = ignore (pad)
    am_torch = torch.rand(5, 7, generator=torch.Generator().manual_seed(0)) < 0.4
    am_torch[:, 0] = False  # every query keeps key 0
    expected, expected_w = ref(
        q,
        kv,
        v,
        key_padding_mask=kpm_torch,
        attn_mask=am_torch,
        need_weights=True,
        average_attn_weights=False,
    )
    kpm, am = masks_from_torch(kpm_torch, am_torch)
    out, w = ours(q, kv, v, key_padding_mask=kpm, attn_mask=am, need_weights=True)
    _close(out, expected)
    _close(w, expected_w)
    assert (w[1, :, :, 4:] == 0).all() and (w[2, :, :, 2:] == 0).all()  # padded keys get no weight


def test_float_masks_and_per_head_3d_attn_mask_equal_torch():
    ref, ours = _pair(seed=2)
    B, H, L = 2, 4, 5
    x = torch.randn(B, L, 16)
    g = torch.Generator().manual_seed(1)
    am = torch.randn(B * H, L, L, generator=g)  # (B*H, L, S) additive, torch layout
    kpm = torch.zeros(B, L)
    kpm[1, 3:] = float("-inf")  # additive key padding mask
    expected, expected_w = ref(
        x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=True, average_attn_weights=False
    )
    out, w = ours(
        x, key_padding_mask=kpm, attn_mask=am, need_weights=True
    )  # floats need no conversion
    _close(out, expected)
    _close(w, expected_w)


@pytest.mark.filterwarnings(
    "ignore:Support for mismatched"
)  # torch deprecates mixing types; we support it
def test_bool_key_padding_with_float_attn_mask_mixes():
    ref, ours = _pair(seed=3)
    x = torch.randn(2, 6, 16)
    kpm_torch = A.padding_mask([6, 3], 6)[:, 0] == 0
    am = torch.randn(6, 6)
    expected, _ = ref(x, x, x, key_padding_mask=kpm_torch, attn_mask=am)
    kpm, am2 = masks_from_torch(kpm_torch, am)
    out, _ = ours(x, key_padding_mask=kpm, attn_mask=am2)
    _close(out, expected)


def test_causal_and_no_bias_equal_torch():
    ref, ours = _pair(bias=False, seed=4)
    assert ours.q_proj.bias is None
    x = torch.randn(2, 6, 16)
    torch_causal = nn.Transformer.generate_square_subsequent_mask(6)  # float, -inf above diagonal
    expected, expected_w = ref(
        x,
        x,
        x,
        attn_mask=torch_causal,
        is_causal=True,
        need_weights=True,
        average_attn_weights=False,
    )
    out, w = ours(x, is_causal=True, need_weights=True)
    _close(out, expected)
    _close(w, expected_w)
    out2, _ = ours(x, attn_mask=A.causal_mask(6))
    _close(out2, expected)


def test_averaged_weights_are_the_mean_over_heads():
    ref, ours = _pair(seed=5)
    x = torch.randn(2, 4, 16)
    _, avg = ref(x, x, x, need_weights=True)  # torch's default averages heads
    _, w = ours(x, need_weights=True)
    _close(w.mean(1), avg)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3),
    L=st.integers(1, 6),
    S=st.integers(1, 6),
    H=st.sampled_from([1, 2, 4]),
    d_head=st.integers(1, 4),
    bias=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_equals_torch_property(B, L, S, H, d_head, bias, seed):
    D = H * d_head
    ref, ours = _pair(D, H, bias=bias, seed=seed)
    g = torch.Generator().manual_seed(seed)
    q, kv = torch.randn(B, L, D, generator=g), torch.randn(B, S, D, generator=g)
    lengths = torch.randint(1, S + 1, (B,), generator=g)  # at least one real key each
    kpm_torch = ~A.padding_mask(lengths, S)[:, 0]
    expected, expected_w = ref(
        q, kv, kv, key_padding_mask=kpm_torch, need_weights=True, average_attn_weights=False
    )
    out, w = ours(q, kv, key_padding_mask=masks_from_torch(kpm_torch)[0], need_weights=True)
    _close(out, expected)
    _close(w, expected_w)


# ---------------------------------------------------------------- mask conventions


def test_key_padding_mask_accepts_bool_int_and_padding_mask_shape():
    _, ours = _pair(seed=6)
    x = torch.randn(2, 5, 16)
    keep = A.padding_mask([5, 2], 5)  # (B, 1, S) bool, True = real
    a, _ = ours(x, key_padding_mask=keep)
    b, _ = ours(x, key_padding_mask=keep[:, 0])  # (B, S) bool
    c, _ = ours(x, key_padding_mask=keep[:, 0].long())  # HF tokenizer style 1/0
    d, _ = ours(x, key_padding_mask=A.to_additive_mask(keep[:, 0]))
    for other in (b, c, d):
        _close(other, a, atol=1e-6)


def test_masks_from_torch_inverts_bools_only():
    b = torch.tensor([[True, False]])
    f = torch.tensor([[0.0, float("-inf")]])
    kb, af = masks_from_torch(b, f)
    assert torch.equal(kb, ~b) and af is f
    assert masks_from_torch() == (None, None)


def test_combine_masks_and_of_bools_sum_of_additive():
    a = torch.tensor([[True, True, False]])
    b = torch.tensor([[True, False, True]])
    assert torch.equal(M.combine_masks(a, b), torch.tensor([[True, False, False]]))
    assert M.combine_masks(a, None) is a and M.combine_masks(None, b) is b
    f = torch.tensor([[0.5, 0.0, 1.0]])
    mixed = M.combine_masks(a, f)
    assert mixed.dtype == torch.float32
    assert mixed[0, :2].tolist() == [0.5, 0.0] and mixed[0, 2] == float("-inf")


def test_need_weights_false_returns_none():
    _, ours = _pair()
    out, w = ours(torch.randn(1, 3, 16))
    assert w is None and out.shape == (1, 3, 16)


def test_self_attention_is_permutation_equivariant():
    _, ours = _pair(seed=7)
    x = torch.randn(1, 6, 16)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    out, _ = ours(x)
    out_p, _ = ours(x[:, perm])
    _close(out_p, out[:, perm])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (
            {"query": torch.zeros(2, 3, 8)},
            r"query has shape \(2, 3, 8\), expected \(B, seq, d_model=16\)",
        ),
        ({"query": torch.zeros(3, 16)}, r"query has shape \(3, 16\)"),
        (
            {"query": torch.zeros(2, 3, 16), "key": torch.zeros(3, 3, 16)},
            r"batch sizes differ: query \(2, 3, 16\), key \(3, 3, 16\)",
        ),
        (
            {
                "query": torch.zeros(2, 3, 16),
                "key": torch.zeros(2, 4, 16),
                "value": torch.zeros(2, 5, 16),
            },
            r"key \(2, 4, 16\) and value \(2, 5, 16\)",
        ),
        (
            {
                "query": torch.zeros(2, 3, 16),
                "key_padding_mask": torch.ones(2, 4, dtype=torch.bool),
            },
            r"key_padding_mask has shape \(2, 4\), expected \(B, S\) = \(2, 3\)",
        ),
        (
            {"query": torch.zeros(2, 3, 16), "attn_mask": torch.ones(3, 4, dtype=torch.bool)},
            r"attn_mask has shape \(3, 4\)",
        ),
        (
            {"query": torch.zeros(2, 3, 16), "attn_mask": torch.ones(5, 3, 3, dtype=torch.bool)},
            r"attn_mask has shape \(5, 3, 3\).*\(B\*H, L, S\) = \(8, 3, 3\)",
        ),
        (
            {"query": torch.zeros(2, 3, 16), "attn_mask": torch.ones(3, 3, dtype=torch.long)},
            "boolean",
        ),
    ],
)
def test_bad_inputs_raise_value_errors_naming_shapes(kwargs, words):
    _, ours = _pair()
    with pytest.raises(ValueError, match=words):
        ours(**kwargs)


def test_constructor_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(8, 2, dropout=1.0)


def test_from_torch_rejects_unsupported_modules():
    with pytest.raises(ValueError, match="add_bias_kv"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="size mismatch"):
        MultiHeadAttention(8, 2).copy_weights_from_torch(nn.MultiheadAttention(8, 4))
    with pytest.raises(ValueError, match="MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(3, 3))


def test_dropout_only_in_training_and_gradients_flow():
    m = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 5, 16, requires_grad=True)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    assert torch.equal(a, b)
    m.train()
    torch.manual_seed(0)
    c, _ = m(x)
    assert not torch.allclose(c, a)
    c.sum().backward()
    assert x.grad is not None and m.q_proj.weight.grad is not None


# ---------------------------------------------------------------- equality with Hugging Face BERT
# (MiniLM)


@pytest.fixture(scope="module")
def minilm():
    transformers = pytest.importorskip("transformers")
    from course_lib.models import ModelNotAvailable, packaged_model_dir

    try:
        folder = packaged_model_dir()
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    model = transformers.BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def test_equals_hugging_face_bert_layer0_attention(minilm):
    model, tokenizer = minilm
    batch = tokenizer(
        [
            "Attention is all you need.",
            "A longer second sentence, so that the first one is padded.",
        ],
        padding=True,
        return_tensors="pt",
    )
    layer = model.encoder.layer[0]
    captured = {}
    hook = layer.attention.output.dense.register_forward_hook(
        lambda mod, i, o: captured.setdefault("out", o)
    )
    try:
        with torch.no_grad():
            hf = model(**batch, output_hidden_states=True, output_attentions=True)
    finally:
        hook.remove()
    ours = MultiHeadAttention.from_hf_bert_layer(layer).eval()
    assert (ours.d_model, ours.n_heads) == (384, 12)
    with torch.no_grad():
        out, w = ours(
            hf.hidden_states[0], key_padding_mask=batch["attention_mask"], need_weights=True
        )
    assert (batch["attention_mask"] == 0).any()  # the test really has padding
    _close(out, captured["out"])
    _close(w, hf.attentions[0])
    # the same from the BertAttention module, and via copy into an existing module
    again = MultiHeadAttention(384, 12).eval().copy_weights_from_hf_bert(layer.attention)
    with torch.no_grad():
        _close(again(hf.hidden_states[0], key_padding_mask=batch["attention_mask"])[0], out, atol=0)


def test_from_hf_bert_layer_rejects_other_modules():
    with pytest.raises(ValueError, match="BertLayer"):
        MultiHeadAttention.from_hf_bert_layer(nn.Linear(4, 4))


# ---------------------------------------------------------------- size and cost


@pytest.mark.parametrize("d, h, bias", [(16, 4, True), (384, 12, True), (32, 1, False)])
def test_parameter_count_matches_modules(d, h, bias):
    ours = MultiHeadAttention(d, h, bias=bias)
    ref = nn.MultiheadAttention(d, h, bias=bias)
    expected = sum(p.numel() for p in ref.parameters())
    assert M.parameter_count(d, h, bias) == expected == sum(p.numel() for p in ours.parameters())


@pytest.mark.parametrize("B, L, D, H", [(1, 7, 16, 4), (2, 10, 32, 8)])
def test_attention_cost_flops_match_torch_flop_counter(B, L, D, H):
    m = MultiHeadAttention(D, H)
    with FlopCounterMode(display=False) as counter:
        m(torch.randn(B, L, D))
    assert M.attention_cost(L, D, H, batch=B)["total_flops"] == counter.get_total_flops()


@settings(max_examples=30, deadline=None)
@given(L=st.integers(1, 512), D=st.sampled_from([8, 64, 384]), H=st.sampled_from([1, 2, 8]))
def test_attention_cost_scaling_property(L, D, H):
    a, b = M.attention_cost(L, D, H), M.attention_cost(2 * L, D, H)
    assert b["score_flops"] == 4 * a["score_flops"]  # quadratic in length
    assert b["projection_flops"] == 2 * a["projection_flops"]  # linear in length
    assert b["attention_weights_bytes"] == 4 * a["attention_weights_bytes"]
    assert a["parameter_bytes"] == 4 * M.parameter_count(D, H)


def test_attention_cost_rejects_nonpositive():
    with pytest.raises(ValueError, match="seq_len"):
        M.attention_cost(0, 8, 2)


# ---------------------------------------------------------------- exercise checkers


def _wrong_split(x, n_heads):
    B, L, D = x.shape
    return x.reshape(B, n_heads, L, D // n_heads)  # the classic mistake: no transpose


@pytest.mark.parametrize(
    "checker, good, bad",
    [
        (M.check_split_heads, split_heads, _wrong_split),
        (M.check_merge_heads, merge_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
        (M.check_parameter_count, M.parameter_count, lambda d, h, bias=True: 4 * d * d // h),
    ],
)
def test_checkers_accept_right_reject_wrong_and_skip_unsolved(checker, good, bad, capsys):
    assert checker(good) is good
    assert "[correct]" in capsys.readouterr().out
    fallback = checker(bad)
    assert fallback is not bad
    assert "[not yet]" in capsys.readouterr().out

    def unsolved(*args, **kwargs):
        raise NotImplementedError

    assert checker(unsolved) is not unsolved
    assert "[skipped]" in capsys.readouterr().out


def test_split_and_merge_hints_explain_without_writing_the_code(capsys):
    M.check_split_heads(_wrong_split)
    M.check_merge_heads(lambda x: x.reshape(x.shape[0], x.shape[2], -1))
    out = capsys.readouterr().out
    assert "cut the LAST axis" in out and "reverse order" in out
    assert ".transpose(1, 2)" not in out and ".reshape(" not in out


def test_parameter_count_hints_point_at_the_layers_without_the_formula(capsys):
    M.check_parameter_count(lambda d, h, bias=True: 4 * d * d // h)
    out = capsys.readouterr().out
    assert "print MultiHeadAttention" in out
    assert not any(s in out for s in ("four", "4 D", "4D", "(D, D)", "D^2", "D * D"))


@pytest.mark.parametrize("d_model, n_heads", [(8, 2), (96, 12), (384, 12), (768, 12), (1000, 8)])
def test_quadratic_part_overtakes_the_projections_just_after_twice_the_width(d_model, n_heads):
    # 4 L^2 D (scores + mixing) > 8 L D^2 (projections) exactly when L > 2 D
    length = M.quadratic_crossover_length(d_model, n_heads)
    assert length == 2 * d_model + 1
    below, at = (
        M.attention_cost(length - 1, d_model, n_heads),
        M.attention_cost(length, d_model, n_heads),
    )
    assert below["score_flops"] + below["mixing_flops"] <= below["projection_flops"]
    assert at["score_flops"] + at["mixing_flops"] > at["projection_flops"]
