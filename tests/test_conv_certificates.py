"""Certificates of the convolutional layers through critics.certify, and the downsampling blocks."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import certifies_exactly
from torch import nn

import critics
from critics.certificates import conv2d_frequency_singular_values, conv2d_lipschitz_bound
from critics.layers import (
    BCOPConv2d,
    InvertibleDownsample,
    MaxMin,
    OSSNConv2d,
    PadToMultiple,
    RKOConv2d,
    SOCConv2d,
    strided_conv,
)
from critics.norms import conv_operator_norm, fold_kernel, frequency_grid, reshaped_kernel_norm_bound


def input_grad_norms(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    return g.flatten(1).norm(dim=1)


def test_reshaped_bound_dominates_fft_norm() -> None:
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        co, ci, k = (int(v) for v in torch.randint(1, 6, (3,), generator=g))
        kernel = torch.randn(co, ci, k, k, generator=g, dtype=torch.float64)
        if seed % 2:
            kernel = kernel * torch.rand(1, 1, k, k, generator=g, dtype=torch.float64) ** 4
        exact = conv2d_lipschitz_bound(kernel, (16, 16), "zeros")
        assert float(reshaped_kernel_norm_bound(kernel)) >= exact * (1 - 1e-12)


def test_invertible_downsample_is_orthogonal() -> None:
    down = InvertibleDownsample(2)
    x = torch.randn(3, 2, 6, 4, dtype=torch.float64)
    y = down(x)
    assert y.shape == (3, 8, 3, 2)
    assert torch.allclose(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1))
    assert torch.equal(nn.PixelShuffle(2)(y), x)
    with pytest.raises(ValueError, match=r"divisible by 2.*\(1, 2, 5, 4\)"):
        down(torch.randn(1, 2, 5, 4))
    pad = PadToMultiple(2)
    assert pad(torch.randn(1, 1, 5, 3)).shape == (1, 1, 6, 4)


@pytest.mark.parametrize("conv", [BCOPConv2d, RKOConv2d, OSSNConv2d])
def test_strided_conv_block(conv: type) -> None:
    block = strided_conv(conv, 3, 8, kernel_size=4, stride=2)
    assert isinstance(block[0], InvertibleDownsample) and block[1].kernel_size == 2 and block[1].in_channels == 12
    assert block(torch.randn(2, 3, 16, 16)).shape == (2, 8, 8, 8)


def test_certify_walks_a_chain_and_bounds_gradients() -> None:
    model = nn.Sequential(
        strided_conv(BCOPConv2d, 3, 8),
        MaxMin(),
        SOCConv2d(8, 8, 3),
        MaxMin(),
        strided_conv(RKOConv2d, 8, 16),
        MaxMin(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 1),
    ).eval()
    report = critics.certificate_report(model, (3, 16, 16))
    kinds = [layer.kind for layer in report.layers]
    assert kinds[:3] == ["InvertibleDownsample", "BCOPConv2d", "MaxMin"]
    assert "SOCConv2d" in kinds and "RKOConv2d" in kinds
    conv_bounds = [c.bound for c in report.layers if c.kind.endswith("Conv2d")]
    assert all(b <= 1 + 1e-4 for b in conv_bounds)
    grads = input_grad_norms(model, torch.randn(16, 3, 16, 16))
    assert grads.max() <= report.total * (1 + 1e-5)


@pytest.mark.parametrize("conv", [BCOPConv2d, RKOConv2d, OSSNConv2d, SOCConv2d])
def test_certificate_is_float64_and_deterministic(conv: type) -> None:
    layer = conv(6, 6, 3).eval()
    a = layer.lipschitz_bound((6, 12, 12))
    b = layer.lipschitz_bound((12, 12))
    assert isinstance(a, float) and a == b
    with pytest.raises(ValueError, match="5 channels"):
        layer.lipschitz_bound((5, 12, 12))


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_fast_operator_norm_matches_full_svd(padding_mode: str) -> None:
    for seed, (co, ci, k, n) in enumerate([(3, 5, 3, 7), (6, 2, 2, 8), (4, 4, 5, 3), (2, 3, 4, 1), (5, 5, 1, 6)]):
        kernel = torch.randn(co, ci, k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        grid = frequency_grid(kernel, (n, n + 1), padding_mode)
        ref = float(conv2d_frequency_singular_values(kernel, grid).max())  # full SVD of every frequency
        size = grid[0] * grid[1] + co + ci
        # the reference is itself a float64 SVD: a few ulps either side of the exact norm (tol)
        assert certifies_exactly(conv_operator_norm(kernel, (n, n + 1), padding_mode), ref * (1 - 1e-14), size, 2e-14)
        same = conv_operator_norm(kernel, (n, n + 1), padding_mode)
        assert conv2d_lipschitz_bound(kernel, (n, n + 1), padding_mode) == same


def test_fold_kernel_wraps_taps_modulo_the_grid() -> None:
    """The loop-free folding equals its definition, K'[p mod h, q mod w] += K[p, q]."""
    g = torch.Generator().manual_seed(0)
    for k, grid in [(5, (2, 3)), (4, (4, 1)), (3, (7, 7)), (6, (1, 1))]:
        kernel = torch.randn(2, 3, k, k, generator=g, dtype=torch.float64)
        ref = torch.zeros(2, 3, min(k, grid[0]), min(k, grid[1]), dtype=torch.float64)
        for p in range(k):
            for q in range(k):
                ref[:, :, p % grid[0], q % grid[1]] += kernel[:, :, p, q]
        torch.testing.assert_close(fold_kernel(kernel, grid), ref, rtol=0, atol=1e-12)
