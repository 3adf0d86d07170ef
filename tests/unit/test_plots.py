"""The shared attention heatmap: one colour scale across panels, a colourbar, clear errors."""

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.plots import attention_heatmap


def test_default_scale_is_zero_to_one_so_panels_compare():
    fig, (a, b) = plt.subplots(1, 2)
    uniform = torch.full((3, 3), 1 / 3)
    peaked = torch.eye(3)
    _, im_a = attention_heatmap(uniform, list("abc"), ax=a, colorbar=False)
    _, im_b = attention_heatmap(peaked, list("abc"), ax=b, colorbar=False)
    assert im_a.get_clim() == im_b.get_clim() == (0.0, 1.0)
    plt.close(fig)


def test_vmax_none_stretches_to_the_matrix_and_colorbar_adds_an_axis():
    fig, ax = plt.subplots()
    _, im = attention_heatmap(torch.full((2, 2), 0.5), ["x", "y"], ax=ax, vmax=None)
    assert im.get_clim() == (0.0, 0.5)
    assert len(fig.axes) == 2  # the panel and its colourbar
    plt.close(fig)


def test_labels_that_do_not_match_the_matrix_are_named():
    with pytest.raises(ValueError, match=r"shape \(2, 2\).*3 query labels"):
        attention_heatmap(torch.ones(2, 2) / 2, ["a", "b", "c"])


# ---------------------------------------------------------------- figures of lessons 02 and 03


def test_attention_grid_shares_one_scale_and_one_colourbar():
    from course_lib.plots import attention_grid

    weights = torch.softmax(torch.randn(5, 4, 4), dim=-1)
    fig = attention_grid(weights, list("abcd"), titles=[f"head {h}" for h in range(5)], ncols=3)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 5  # the sixth grid cell is switched off
    assert {ax.get_images()[0].get_clim() for ax in panels} == {(0.0, 1.0)}
    colourbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 1
    assert fig.get_supxlabel() == "key (attended to)" and fig.get_supylabel() == "query"
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(n, L, S\) weights, got shape \(4, 4\)"):
        attention_grid(weights[0], list("abcd"))
    with pytest.raises(ValueError, match="5 panels but 2 titles"):
        attention_grid(weights, list("abcd"), titles=["a", "b"])


def test_attention_cost_figure_draws_the_width_independent_weights_once():
    from course_lib.multihead import attention_cost, attention_cost_figure

    lengths, widths = [16, 64, 256], [96, 192]
    fig = attention_cost_figure(lengths, widths)
    compute, memory, by_width = fig.axes[:3]
    assert len(compute.get_lines()) == 4  # projections and scores, for two widths
    labels = [line.get_label() for line in memory.get_lines()]
    assert labels == ["weights (H,L,L), H=12, any D", "q, k, v, out, D=384", "q, k, v, out, D=768"]
    expected = [attention_cost(n, 384, 12)["attention_weights_bytes"] / 2**20 for n in lengths]
    assert list(memory.get_lines()[0].get_ydata()) == expected
    assert len(by_width.get_lines()) == 2
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in (compute, memory, by_width))
    plt.close(fig)


def test_position_similarity_figure_one_scale_and_a_curve_per_table():
    from course_lib.positional import position_similarity_figure

    fig = position_similarity_figure({"a": torch.eye(6), "b": torch.ones(6, 6)})
    maps = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_images()[0].get_clim() for ax in maps] == [(-1.0, 1.0), (-1.0, 1.0)]
    curve = [ax for ax in fig.axes if ax.get_lines()][0]
    eye_curve, ones_curve = curve.get_lines()
    assert list(eye_curve.get_ydata()) == [0.0] * 5 and list(ones_curve.get_ydata()) == [1.0] * 5
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match=r"'a': expected a square \(n, n\) matrix, got shape"):
        position_similarity_figure({"a": torch.ones(2, 3)})


def test_sinusoid_explorer_figure_marks_the_chosen_positions_and_checks_its_inputs():
    from course_lib.positional import sinusoid_explorer_figure, sinusoidal_encoding

    pe = sinusoidal_encoding(40, 8)
    fig = sinusoid_explorer_figure(pe, position=3, pair=1, shift=5, n_shown=30)
    table, circle, similarity = fig.axes[:3]
    assert [line.get_xdata()[0] for line in table.get_lines()] == [3, 8]
    assert len(circle.collections) == 3 and circle.get_legend() is not None
    assert len(similarity.get_lines()[0].get_ydata()) == 40
    plt.close(fig)
    with pytest.raises(ValueError, match=r"pair must lie in 0..3"):
        sinusoid_explorer_figure(pe, 3, 4, 5, n_shown=30)
    with pytest.raises(ValueError, match=r"position \+ shift 45 must be rows of the table"):
        sinusoid_explorer_figure(pe, 5, 1, 40, n_shown=30)
