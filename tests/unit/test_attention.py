import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention as A


def _qkv(batch, L, S, d_k, d_v, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*batch, L, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, S, d_k, generator=g, dtype=dtype),
        torch.randn(*batch, S, d_v, generator=g, dtype=dtype),
    )


def test_matches_torch_without_mask():
    q, k, v = _qkv((2, 3), 5, 7, 8, 4)
    torch.testing.assert_close(
        A.scaled_dot_product_attention(q, k, v),
        F.scaled_dot_product_attention(q, k, v),
        atol=1e-6,
        rtol=0,
    )


def test_matches_torch_causal_square_and_rectangular():
    for L, S in ((6, 6), (4, 9)):
        q, k, v = _qkv((2, 3), L, S, 8, 8)
        torch.testing.assert_close(
            A.scaled_dot_product_attention(q, k, v, is_causal=True),
            F.scaled_dot_product_attention(q, k, v, is_causal=True),
            atol=1e-6,
            rtol=0,
        )


def test_matches_torch_with_padding_masks_bool_and_additive():
    q, k, v = _qkv((3, 2), 6, 6, 8, 5)
    keep = A.padding_mask([6, 4, 1], 6).unsqueeze(1)  # (B, 1, 1, S)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    torch.testing.assert_close(
        A.scaled_dot_product_attention(q, k, v, keep), expected, atol=1e-6, rtol=0
    )
    additive = A.to_additive_mask(keep)
    torch.testing.assert_close(
        A.scaled_dot_product_attention(q, k, v, additive), expected, atol=1e-6, rtol=0
    )


def test_matches_torch_with_causal_plus_padding_and_custom_scale():
    q, k, v = _qkv((2, 4), 5, 5, 16, 16)
    mask = A.causal_mask(5) & A.padding_mask([5, 3], 5).unsqueeze(1)
    torch.testing.assert_close(
        A.scaled_dot_product_attention(q, k, v, mask, scale=0.3),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3),
        atol=1e-6,
        rtol=0,
    )


def test_returns_weights_that_sum_to_one():
    q, k, v = _qkv((2,), 4, 6, 8, 8)
    out, w = A.scaled_dot_product_attention(q, k, v, return_weights=True)
    assert w.shape == (2, 4, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
    torch.testing.assert_close(out, w @ v)


def test_fully_masked_row_gives_zeros_and_no_nan_elsewhere():
    q, k, v = _qkv((1,), 3, 4, 8, 8)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may look at nothing
    out, w = A.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert not torch.isnan(out).any() and not torch.isnan(w).any()
    assert torch.all(out[0, 1] == 0) and torch.all(w[0, 1] == 0)
    ref = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask
    )  # torch 2.13 also gives zeros there
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # and gradients stay finite
    q.requires_grad_(True)
    A.scaled_dot_product_attention(q, k, v, mask).sum().backward()
    assert torch.isfinite(q.grad).all()


def test_gradcheck_float64():
    q, k, v = _qkv((2,), 3, 4, 5, 3, dtype=torch.float64)
    mask = A.causal_mask(3, 4)
    for t in (q, k, v):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: A.scaled_dot_product_attention(a, b, c, mask), (q, k, v)
    )
    assert torch.autograd.gradcheck(
        lambda a, b, c: A.scaled_dot_product_attention(a, b, c), (q, k, v)
    )


@pytest.mark.parametrize(
    "shapes, words",
    [
        (((2, 5, 8), (2, 7, 4), (2, 7, 4)), "last dimension d_k"),
        (((2, 5, 8), (2, 7, 8), (2, 6, 4)), "number of positions S"),
        (((2, 5, 8), (3, 7, 8), (3, 7, 4)), "do not broadcast"),
        (((8,), (7, 8), (7, 4)), "at least 2 dimensions"),
    ],
)
def test_bad_shapes_raise_value_error_naming_shapes(shapes, words):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=words) as info:
        A.scaled_dot_product_attention(q, k, v)
    assert str(tuple(shapes[0])) in str(info.value) or "got shape" in str(info.value)


def test_bad_mask_raises_value_error():
    q, k, v = _qkv((2,), 5, 7, 8, 8)
    with pytest.raises(ValueError, match=r"mask of shape \(5, 5\)"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="dtype torch.int64"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(5, 7, dtype=torch.long))


def test_softmax_stable_where_naive_overflows():
    x = torch.tensor([[1000.0, 999.0, 998.0]])
    assert torch.isnan(A.naive_softmax(x)).any()
    torch.testing.assert_close(A.softmax(x), torch.softmax(x, -1))
    assert torch.equal(A.softmax(torch.full((2, 3), float("-inf"))), torch.zeros(2, 3))


def test_scaling_demo_numbers():
    assert abs(A.qk_variance(64) / 64 - 1) < 0.05
    assert A.mean_max_weight(512, scaled=False) > 0.9 > A.mean_max_weight(512, scaled=True)


def test_checkers_accept_right_reject_wrong_and_skip_unsolved(capsys):
    assert A.check_softmax(lambda x, dim=-1: torch.softmax(x, dim)) is not A.softmax
    assert A.check_softmax(A.naive_softmax) is A.softmax
    assert "subtract the row maximum" in capsys.readouterr().out

    def unsolved(L):
        raise NotImplementedError

    assert A.check_causal_mask(unsolved) is A.causal_mask
    assert "not solved yet" in capsys.readouterr().out
    assert A.check_causal_mask(lambda L: torch.ones(L, L, dtype=torch.bool).triu()) is A.causal_mask
    out = capsys.readouterr().out
    assert "[not yet]" in out and "which way round" in out
    assert "tril" not in out  # the hint explains the mask; it does not name the one-line answer


@settings(max_examples=60, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    L=st.integers(1, 6),
    S=st.integers(1, 6),
    d_k=st.integers(1, 8),
    d_v=st.integers(1, 8),
    kind=st.sampled_from(["none", "bool", "additive", "causal"]),
    seed=st.integers(0, 10_000),
)
def test_property_matches_torch(batch, L, S, d_k, d_v, kind, seed):
    q, k, v = _qkv(tuple(batch), L, S, d_k, d_v, seed=seed)
    g = torch.Generator().manual_seed(seed)
    mask, kwargs = None, {}
    if kind in ("bool", "additive"):
        mask = torch.rand(L, S, generator=g) > 0.4  # fully masked rows included
        if kind == "additive":
            mask = A.to_additive_mask(mask)
    if kind == "causal":
        kwargs["is_causal"] = True
    ours = A.scaled_dot_product_attention(q, k, v, mask, **kwargs)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kwargs)
    assert ours.shape == (*batch, L, d_v)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(L=st.integers(1, 6), S=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_property_random_masks_never_leak_nan(L, S, seed):
    q, k, v = _qkv((2,), L, S, 4, 4, seed=seed)
    mask = torch.rand(2, L, S, generator=torch.Generator().manual_seed(seed)) > 0.5
    out, w = A.scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.isfinite(out).all()
    row_sums = w.sum(-1)
    has_key = mask.any(-1)
    torch.testing.assert_close(row_sums[has_key], torch.ones_like(row_sums[has_key]))
    assert torch.all(row_sums[~has_key] == 0)
