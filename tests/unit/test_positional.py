import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib import positional as P
from course_lib.multihead import MultiHeadAttention


def _close(a, b, atol=1e-5):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


# ---------------------------------------------------------------- sinusoidal


def test_sinusoidal_matches_the_formula_entry_by_entry():
    n, d = 12, 10
    pe = P.sinusoidal_encoding(n, d, dtype=torch.float64)
    assert pe.shape == (n, d) and pe.dtype == torch.float64
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-12)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-12)


def test_sinusoidal_matches_hugging_face_distilbert_table():
    distilbert = pytest.importorskip("transformers.models.distilbert.modeling_distilbert")
    out = torch.empty(64, 32)
    distilbert._create_sinusoidal_embeddings(64, 32, out)
    _close(P.sinusoidal_encoding(64, 32), out, atol=1e-6)


def test_sinusoidal_first_row_and_range():
    pe = P.sinusoidal_encoding(200, 16)
    assert torch.equal(pe[0, 0::2], torch.zeros(8)) and torch.equal(pe[0, 1::2], torch.ones(8))
    assert pe.abs().max() <= 1.0
    _close(
        P.sinusoidal_frequencies(16),
        10000.0 ** (-torch.arange(0, 16, 2, dtype=torch.float64) / 16),
        atol=1e-15,
    )


@pytest.mark.parametrize("args", [(4, 7), (4, 0), (0, 8), (3.0, 8)])
def test_sinusoidal_rejects_bad_sizes(args):
    with pytest.raises(ValueError, match="must be a positive"):
        P.sinusoidal_encoding(*args)


@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, 400), k=st.integers(0, 100), half=st.integers(1, 32))
def test_shift_is_one_fixed_rotation_property(pos, k, half):
    d = 2 * half
    pe = P.sinusoidal_encoding(pos + k + 1, d, dtype=torch.float64)
    m = P.shift_rotation_matrix(k, d, dtype=torch.float64)
    _close(m @ pe[pos], pe[pos + k], atol=1e-9)
    _close(m @ m.T, torch.eye(d, dtype=torch.float64), atol=1e-12)  # a rotation: orthogonal


def test_shift_matrix_applies_to_the_whole_table_in_float32():
    pe = P.sinusoidal_encoding(256, 64)
    for k in (1, 5, 40):
        _close(pe[:-k] @ P.shift_rotation_matrix(k, 64).T, pe[k:], atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, 300), k=st.integers(-50, 50), half=st.integers(1, 32))
def test_dot_product_depends_only_on_offset_property(pos, k, half):
    d = 2 * half
    pe = P.sinusoidal_encoding(pos + 60, d, dtype=torch.float64)
    other = pos + k
    if other < 0:
        return
    got = pe[pos] @ pe[other]
    assert got.item() == pytest.approx(P.sinusoidal_dot_product(k, d).item(), abs=1e-9)


def test_sinusoidal_dot_product_is_symmetric_and_peaks_at_zero():
    d = 64
    ks = torch.arange(-100, 101)
    dots = P.sinusoidal_dot_product(ks, d)
    _close(dots, dots.flip(0), atol=1e-12)
    assert dots.argmax().item() == 100 and dots[100].item() == pytest.approx(d / 2)


def test_sinusoidal_module_adds_the_table_with_offset():
    m = P.SinusoidalPositionalEncoding(8, max_positions=20)
    x = torch.zeros(2, 5, 8)
    _close(m(x), P.sinusoidal_encoding(5, 8).expand(2, 5, 8), atol=0)
    _close(m(x, offset=3), P.sinusoidal_encoding(8, 8)[3:].expand(2, 5, 8), atol=0)
    assert len(list(m.parameters())) == 0
    with pytest.raises(ValueError, match=r"exceed max_positions=20"):
        m(torch.zeros(1, 18, 8), offset=3)
    with pytest.raises(ValueError, match=r"\(B, L, d_model=8\), got \(5, 8\)"):
        m(torch.zeros(5, 8))


# ---------------------------------------------------------------- learned


def test_learned_embedding_adds_rows_and_trains():
    torch.manual_seed(0)
    m = P.LearnedPositionalEmbedding(10, 4)
    x = torch.zeros(3, 6, 4)
    _close(m(x), m.weight[:6].expand(3, 6, 4), atol=0)
    ids = torch.tensor([[2, 3, 4, 5, 6, 7]] * 3)
    _close(m(x, ids), m.weight[2:8].expand(3, 6, 4), atol=0)
    m(x).sum().backward()
    assert m.weight.grad[:6].abs().sum() > 0 and m.weight.grad[6:].abs().sum() == 0


@pytest.mark.parametrize(
    "x, ids, words",
    [
        (torch.zeros(1, 11, 4), None, r"L=11 positions, more than max_positions=10"),
        (torch.zeros(1, 3, 4), torch.tensor([0, 1]), r"position_ids has shape \(2,\), expected"),
        (torch.zeros(1, 3, 4), torch.tensor([8, 9, 10]), r"must lie in \[0, 9\]"),
        (torch.zeros(1, 3, 5), None, r"\(B, L, d_model=4\), got \(1, 3, 5\)"),
    ],
)
def test_learned_embedding_bad_inputs(x, ids, words):
    with pytest.raises(ValueError, match=words):
        P.LearnedPositionalEmbedding(10, 4)(x, ids)


def test_learned_embedding_from_minilm_equals_hf_table():
    transformers = pytest.importorskip("transformers")
    from course_lib.models import ModelNotAvailable, packaged_model_dir

    try:
        folder = packaged_model_dir()
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    model = transformers.BertModel.from_pretrained(folder)
    m = P.LearnedPositionalEmbedding.from_hf_bert(model)
    assert m.weight.shape == (512, 384)
    assert torch.equal(m.weight, model.embeddings.position_embeddings.weight)
    with pytest.raises(ValueError, match="position_embeddings"):
        P.LearnedPositionalEmbedding.from_hf_bert(nn.Linear(2, 2))


# ---------------------------------------------------------------- helpers


def test_block_rotation_matrix_rotates_each_pair():
    m = P.block_rotation_matrix(torch.tensor([math.pi / 2, math.pi]))
    _close(m @ torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, -1.0, 0.0]), atol=1e-6)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        P.block_rotation_matrix(torch.zeros(2, 2))


def test_cosine_similarity_matrix():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    s = P.cosine_similarity_matrix(x)
    _close(s.diagonal(), torch.ones(3))
    assert s[0, 1].item() == pytest.approx(0.0) and s[0, 2].item() == pytest.approx(
        1 / math.sqrt(2)
    )
    with pytest.raises(ValueError, match=r"\(n, d\) table, got \(3,\)"):
        P.cosine_similarity_matrix(torch.zeros(3))


def test_permutation_error_sees_equivariance_and_its_loss():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 7, 16)
    perm = torch.tensor([6, 2, 0, 5, 1, 3, 4])
    assert P.permutation_error(lambda t: mha(t)[0], x, perm) < 1e-5
    pe = P.SinusoidalPositionalEncoding(16, 32)
    assert P.permutation_error(lambda t: mha(pe(t))[0], x, perm) > 1e-2
    with pytest.raises(ValueError, match="permutation of 0..6"):
        P.permutation_error(lambda t: t, x, torch.tensor([0, 0, 1, 2, 3, 4, 5]))


@settings(max_examples=25, deadline=None)
@given(L=st.integers(2, 8), H=st.sampled_from([1, 2, 4]), seed=st.integers(0, 10_000))
def test_attention_without_positions_is_permutation_equivariant_property(L, H, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, H).eval()
    x = torch.randn(2, L, 8)
    perm = torch.randperm(L)
    assert P.permutation_error(lambda t: mha(t)[0], x, perm) < 1e-5


# ---------------------------------------------------------------- RoPE


def test_rope_angles_and_cos_sin_layouts():
    theta = P.rope_angles(torch.tensor([0, 1, 3]), 4)
    assert theta.shape == (3, 2) and theta.dtype == torch.float64
    _close(
        theta[2], torch.tensor([3.0, 3.0 / 100.0], dtype=torch.float64), atol=1e-12
    )  # 10000^(-2/4) = 1/100
    cos, sin = P.rope_cos_sin(torch.tensor([0, 1, 3]), 4)
    assert cos.shape == sin.shape == (3, 4) and cos.dtype == torch.float32
    _close(sin[2], torch.tensor([3.0, 3.0, 0.03, 0.03]).sin())  # interleaved: angle per pair, twice
    _close(
        P.rope_cos_sin(torch.tensor([3]), 4, interleaved=False)[1][0],
        torch.tensor([3.0, 0.03, 3.0, 0.03]).sin(),
    )  # half layout: the angles, twice
    with pytest.raises(ValueError, match=r"positions must be 1-D \(L,\), got shape \(1, 3\)"):
        P.rope_angles(torch.zeros(1, 3), 4)


def test_rotate_pairs_and_rotate_half():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.equal(P.rotate_pairs(x), torch.tensor([-2.0, 1.0, -4.0, 3.0]))
    assert torch.equal(P.rotate_half(x), torch.tensor([-3.0, -4.0, 1.0, 2.0]))
    for f in (P.rotate_pairs, P.rotate_half):
        with pytest.raises(ValueError, match=r"even, got shape \(3,\)"):
            f(torch.zeros(3))


def test_rope_half_layout_equals_hugging_face_llama():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama import modeling_llama as ml

    config = transformers.LlamaConfig(
        hidden_size=64,
        num_attention_heads=4,
        head_dim=16,
        max_position_embeddings=64,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    rotary = ml.LlamaRotaryEmbedding(config)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 10, 16, generator=g), torch.randn(2, 4, 10, 16, generator=g)
    positions = torch.arange(3, 13)
    cos, sin = rotary(q, positions[None])
    q_ref, k_ref = ml.apply_rotary_pos_emb(q, k, cos, sin)
    _close(P.apply_rope(q, positions, interleaved=False), q_ref)
    _close(P.apply_rope(k, positions, interleaved=False), k_ref)


def test_interleaved_is_the_half_layout_with_features_reordered():
    d = 8
    x = torch.randn(5, d)
    order = torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2)))  # (0,2,4,6,1,3,5,7)
    inverse = torch.argsort(order)
    _close(P.apply_rope(x), P.apply_rope(x[:, order], interleaved=False)[:, inverse], atol=1e-6)


def test_rope_equals_its_rotation_matrix_and_keeps_norms():
    x = torch.randn(6, 8, dtype=torch.float64)
    out = P.apply_rope(x)
    for m in range(6):
        _close(out[m], P.rope_rotation_matrix(m, 8, dtype=torch.float64) @ x[m], atol=1e-12)
    _close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-12)
    _close(out[0], x[0], atol=0)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 200),
    n=st.integers(0, 200),
    shift=st.integers(0, 200),
    half=st.integers(1, 16),
    seed=st.integers(0, 10_000),
)
def test_rope_score_depends_only_on_offset_property(m, n, shift, half, seed):
    d = 2 * half
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(d, generator=g, dtype=torch.float64),
        torch.randn(d, generator=g, dtype=torch.float64),
    )

    def score(a, b):
        return (
            P.apply_rope(q[None], torch.tensor([a])) @ P.apply_rope(k[None], torch.tensor([b])).T
        ).item()

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-8)
    # and it equals q . R_{n-m} k
    expected = q @ P.rope_rotation_matrix(n - m, d, dtype=torch.float64) @ k
    assert score(m, n) == pytest.approx(expected.item(), abs=1e-8)


def test_rope_score_matrix_is_constant_along_diagonals():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)
    s = P.rope_score_matrix(q, k, 20)
    for offset in (-5, 0, 7):
        diag = s.diagonal(offset)
        assert (diag - diag[0]).abs().max() < 1e-4
    with pytest.raises(ValueError, match=r"got q \(16,\), k \(8,\)"):
        P.rope_score_matrix(q, k[:8], 4)


def test_rotary_module_and_bad_shapes():
    rope = P.RotaryEmbedding(8)
    q, k = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8)
    qr, kr = rope(q, k)
    _close(qr, P.apply_rope(q))
    _close(kr, P.apply_rope(k))
    qr2, _ = rope(q, k, q_positions=torch.arange(2, 7))
    _close(qr2, P.apply_rope(q, torch.arange(2, 7)))
    with pytest.raises(
        ValueError, match=r"q has shape \(2, 3, 5, 6\), expected \(\.\.\., L, head_dim=8\)"
    ):
        rope(torch.zeros(2, 3, 5, 6), k)
    with pytest.raises(ValueError, match=r"positions has shape \(4,\), expected \(L,\) = \(5,\)"):
        P.apply_rope(q, torch.arange(4))
    with pytest.raises(ValueError, match="head_dim must be a positive even int"):
        P.apply_rope(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., L, head_dim\), got \(4,\)"):
        P.apply_rope(torch.zeros(4))


# ---------------------------------------------------------------- exercise checkers


def _wrong_sinusoidal(n, d):  # the classic slip: cos of a different frequency in the odd columns
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)
    angle = pos / 10000 ** (j / d)
    return torch.where(j.long() % 2 == 0, angle.sin(), angle.cos()).float()


def _wrong_rope(x):  # rotates the wrong way
    return (
        P.apply_rope(x)
        - 2 * P.rotate_pairs(x) * P.rope_cos_sin(torch.arange(x.shape[-2]), x.shape[-1])[1]
    )


@pytest.mark.parametrize(
    "checker, good, bad",
    [
        (P.check_sinusoidal_encoding, P.sinusoidal_encoding, _wrong_sinusoidal),
        (
            P.check_shift_rotation_matrix,
            P.shift_rotation_matrix,
            lambda k, d: P.shift_rotation_matrix(k, d).T,
        ),
        (P.check_apply_rope, P.apply_rope, _wrong_rope),
    ],
)
def test_checkers_accept_right_reject_wrong_and_skip_unsolved(checker, good, bad, capsys):
    assert checker(good) is good
    assert "[correct]" in capsys.readouterr().out
    assert checker(bad) is not bad
    assert "[not yet]" in capsys.readouterr().out

    def unsolved(*args, **kwargs):
        raise NotImplementedError

    assert checker(unsolved) is not unsolved
    assert "[skipped]" in capsys.readouterr().out


def test_shift_matrix_hint_leads_to_the_derivation_without_the_block(capsys):
    P.check_shift_rotation_matrix(lambda k, d: P.shift_rotation_matrix(k, d).T)
    out = capsys.readouterr().out
    assert "angle-addition" in out
    assert "[[" not in out and "-sin b" not in out


# ---------------------------------------------------------------- why the similarity levels off


def test_sinusoidal_similarity_is_the_cosine_of_table_rows():
    table = P.sinusoidal_encoding(1200, 64, dtype=torch.float64)
    sim = P.cosine_similarity_matrix(table)
    for k in (0, 1, 7, 100, 1000):
        _close(P.sinusoidal_similarity(k, 64), sim[150, 150 + k], atol=1e-9)


@pytest.mark.parametrize("d", [64, 384])
def test_slow_pair_share_falls_by_one_step_per_tenfold_distance(d):
    pairs = d // 2
    for k in (1, 3, 10, 100, 1000, 5000):
        share = P.slow_pair_share(k, d).item()
        expected = sum(k * 10000 ** (-2 * i / d) < 1 for i in range(pairs)) / pairs
        assert share == pytest.approx(expected)  # the definition, counted by hand
        assert abs(share - (1 - math.log10(k) / 4)) <= 1 / pairs + 1e-12  # base 10000 = 10^4
    assert P.slow_pair_share(-100, d) == P.slow_pair_share(100, d)


def test_similarity_follows_the_share_of_slow_pairs_as_lesson_03_says():
    # the fast pairs' cosines average out only roughly: at d = 384 and distances up to 1,000
    # (what lesson 03 shows) they move the similarity by at most about 0.1
    k = torch.arange(1, 1001)
    diff = P.sinusoidal_similarity(k, 384) - P.slow_pair_share(k, 384)
    assert diff.abs().max() < 0.11
    assert P.sinusoidal_similarity(1000, 384) < 0.2 < 0.4 < P.sinusoidal_similarity(100, 384)


def test_similarity_decay_figure_draws_both_curves_on_a_log_axis():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = torch.logspace(0, 4, 20, dtype=torch.float64)
    fig = P.similarity_decay_figure(64, k)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    solid, dashed = ax.get_lines()[:2]
    _close(torch.as_tensor(solid.get_ydata()), P.sinusoidal_similarity(k, 64), atol=1e-12)
    _close(torch.as_tensor(dashed.get_ydata()), P.slow_pair_share(k, 64), atol=1e-12)
    plt.close(fig)
