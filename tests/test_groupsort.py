"""GroupSort / MaxMin: permutation within groups, gradient-norm preservation, errors."""

from __future__ import annotations

import pytest
import torch

from critics.layers import GroupSort, MaxMin, get_activation


@pytest.mark.parametrize("shape", [(5, 12), (3, 12, 4, 4)])
@pytest.mark.parametrize("group_size", [1, 2, 3, 4, 12])
def test_output_is_a_sorted_permutation_within_groups(shape: tuple[int, ...], group_size: int) -> None:
    x = torch.randn(shape)
    y = GroupSort(group_size)(x)
    assert y.shape == x.shape
    xg = x.unflatten(1, (12 // group_size, group_size))
    yg = y.unflatten(1, (12 // group_size, group_size))
    # same multiset in every group (sort both ways and compare) ...
    torch.testing.assert_close(yg.sort(dim=2).values, xg.sort(dim=2).values, rtol=0, atol=0)
    # ... and sorted (largest first) inside each group
    assert (yg[:, :, :-1] >= yg[:, :, 1:]).all()


def test_maxmin_is_groupsort2_with_max_first() -> None:
    x = torch.randn(7, 10, 3)
    y = MaxMin()(x)
    torch.testing.assert_close(y, GroupSort(2)(x), rtol=0, atol=0)
    torch.testing.assert_close(y[:, 0::2], torch.maximum(x[:, 0::2], x[:, 1::2]), rtol=0, atol=0)
    torch.testing.assert_close(y[:, 1::2], torch.minimum(x[:, 0::2], x[:, 1::2]), rtol=0, atol=0)


@pytest.mark.parametrize("act", [MaxMin(), GroupSort(4), GroupSort(3)])
def test_gradient_norm_preserved(act: torch.nn.Module) -> None:
    x = torch.randn(64, 12, 2, 2, requires_grad=True)
    g = torch.randn(64, 12, 2, 2)
    (grad,) = torch.autograd.grad(act(x), x, g)
    torch.testing.assert_close(grad.flatten(1).norm(dim=1), g.flatten(1).norm(dim=1), rtol=1e-6, atol=0)


def test_gradient_norm_preserved_on_ties() -> None:
    x = torch.zeros(4, 8, requires_grad=True)  # every group is a tie
    g = torch.randn(4, 8)
    (grad,) = torch.autograd.grad(GroupSort(4)(x), x, g)
    torch.testing.assert_close(grad.norm(dim=1), g.norm(dim=1), rtol=1e-6, atol=0)


def test_lipschitz_bound_is_one() -> None:
    assert GroupSort(4).lipschitz_bound((8, 3, 3)) == 1.0
    assert MaxMin().lipschitz_bound((6,)) == 1.0


@pytest.mark.parametrize("act,channels", [(GroupSort(4), 10), (MaxMin(), 7), (GroupSort(3), 8)])
def test_bad_channel_count_names_the_value(act: torch.nn.Module, channels: int) -> None:
    with pytest.raises(ValueError, match=rf"channel count {channels}\b"):
        act(torch.randn(2, channels))
    with pytest.raises(ValueError, match=rf"channel count {channels}\b"):
        act(torch.randn(2, channels, 4, 4))
    with pytest.raises(ValueError, match=rf"channel count {channels}\b"):
        act.lipschitz_bound((channels, 4, 4))


def test_bad_group_size_and_input_rank() -> None:
    with pytest.raises(ValueError, match="0"):
        GroupSort(0)
    with pytest.raises(ValueError, match=r"\(N, C"):
        MaxMin()(torch.randn(4))


def test_get_activation() -> None:
    assert isinstance(get_activation("maxmin"), MaxMin)
    gs = get_activation("groupsort4")
    assert isinstance(gs, GroupSort) and gs.group_size == 4
    assert get_activation("GroupSort8").group_size == 8
    assert isinstance(get_activation("relu"), torch.nn.ReLU)
    assert get_activation("leakyrelu").negative_slope == 0.2
    with pytest.raises(ValueError, match="maxmin.*groupsort4.*relu"):
        get_activation("swish")
