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
