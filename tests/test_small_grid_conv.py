"""Convolutions on grids no larger than their kernel are applied as the operator's matrix
(``critics.layers.conv_base.small_grid_conv``): the same operator as padding and convolving, with
the same gradients, orthogonal BCOP layers stay orthogonal there, and the layers take this path.
Zero-padded convolutions on small grids are certified exactly from that matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import critics
import critics.layers.conv_base as conv_base
from critics.layers import BCOPConv2d, RKOConv2d
from critics.layers.conv_base import same_padding, small_grid_conv
from critics.norms import conv_matrix, conv_operator_norm, same_conv_operator_norm, tap_shifts
from critics.ortho import OrthoConfig


def _padded_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, mode: str) -> torch.Tensor:
    pad_mode = "circular" if mode == "circular" else "constant"
    return F.conv2d(F.pad(x, same_padding(kernel.shape[-1]), mode=pad_mode), kernel, bias)


CASES = [
    (mode, k, grid)
    for mode in ("circular", "zeros")
    for k in (2, 3, 4)
    for grid in ((1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (4, 4), (3, 5))
    if grid[0] * grid[1] <= k * k and not (mode == "circular" and max(same_padding(k)) > min(grid))
]


@pytest.mark.parametrize("mode,k,grid", CASES)
def test_matrix_form_is_the_padded_convolution_with_its_gradients(mode: str, k: int, grid: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(k * 100 + grid[0] * 10 + grid[1])
    x = torch.randn(5, 3, *grid, generator=gen, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(4, 3, k, k, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 4, *grid, generator=gen, dtype=torch.float64)
    outputs = []
    for fn in (_padded_conv, small_grid_conv):
        y = fn(x, kernel, bias, mode)
        grads = torch.autograd.grad((y * weights).sum(), (x, kernel, bias))
        outputs.append((y.detach(), *grads))
    for want, got in zip(*outputs):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_tap_shifts_are_permutations_for_circular_padding_and_truncated_shifts_for_zeros() -> None:
    circ = tap_shifts(3, 3, True, torch.float64, torch.device("cpu"))
    assert circ.shape == (3, 3, 3)
    assert all(torch.equal(s.sum(0), torch.ones(3, dtype=torch.float64)) for s in circ)  # each a permutation
    assert all(torch.equal(s.sum(1), torch.ones(3, dtype=torch.float64)) for s in circ)
    zeros = tap_shifts(3, 3, False, torch.float64, torch.device("cpu"))
    assert zeros[1].equal(torch.eye(3, dtype=torch.float64))  # the centre tap reads the same pixel
    assert zeros[0].sum() == 2 and zeros[2].sum() == 2  # an outer tap falls off one edge


@pytest.mark.parametrize("grid", [(1, 1), (2, 2)])
def test_bcop_on_a_small_grid_takes_the_matrix_path_and_stays_orthogonal(
    grid: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    layer = BCOPConv2d(4, 4, 2, ortho=OrthoConfig.TEST).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))  # away from the initial point
    called = []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        called.append(True)
        return small_grid_conv(*args, **kwargs)

    monkeypatch.setattr(conv_base, "small_grid_conv", spy)
    x = torch.randn(3, 4, *grid, dtype=torch.float64)
    y = layer(x)
    monkeypatch.undo()
    assert called, "a 2 x 2 kernel on a grid of at most 4 pixels should use the matrix form"
    torch.testing.assert_close(y, _padded_conv(x, layer.weight, layer.bias, "circular"), rtol=0, atol=1e-12)
    layer.bias = None
    n = 4 * grid[0] * grid[1]
    jac = torch.autograd.functional.jacobian(lambda v: layer(v.view(1, 4, *grid)).flatten(), torch.randn(n).double())
    torch.testing.assert_close(torch.linalg.svdvals(jac), torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-9)


def test_zero_padded_certificate_holds_on_the_matrix_path() -> None:
    torch.manual_seed(1)
    layer = RKOConv2d(3, 5, 3, padding_mode="zeros").double()
    grid = (2, 2)
    n = 3 * grid[0] * grid[1]
    jac = torch.autograd.functional.jacobian(lambda v: layer(v.view(1, 3, *grid)).flatten(), torch.randn(n).double())
    measured = float(torch.linalg.matrix_norm(jac, ord=2))
    assert layer.lipschitz_bound((3, *grid)) >= measured - 1e-9


@pytest.mark.parametrize("mode", ["circular", "zeros"])
@pytest.mark.parametrize("k,grid", [(3, (5, 4)), (2, (3, 3)), (4, (4, 6))])
def test_conv_matrix_is_the_convolution_on_any_grid(mode: str, k: int, grid: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(7)
    kernel = torch.randn(3, 2, k, k, generator=gen, dtype=torch.float64)
    x = torch.randn(2, *grid, generator=gen, dtype=torch.float64)
    want = _padded_conv(x[None], kernel, None, mode)[0]
    torch.testing.assert_close(conv_matrix(kernel, grid, mode) @ x.reshape(-1), want.reshape(-1), rtol=0, atol=1e-12)


def _jacobian_norm(fn, shape: tuple[int, ...]) -> float:  # noqa: ANN001
    n = int(torch.tensor(shape).prod())
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view(1, *shape)).flatten(), torch.zeros(n).double())
    return float(torch.linalg.matrix_norm(jac, ord=2))


@pytest.mark.parametrize("k,grid", [(2, (1, 1)), (3, (1, 1)), (3, (2, 2)), (2, (2, 3)), (3, (3, 3)), (4, (2, 2))])
def test_zero_padded_certificate_is_exact_on_small_grids(k: int, grid: tuple[int, int]) -> None:
    torch.manual_seed(k * 10 + grid[0])
    layer = RKOConv2d(3, 4, k, padding_mode="zeros", bias=False).double().eval()
    with torch.no_grad():
        kernel = layer.weight
    cert = layer.lipschitz_bound((3, *grid))
    measured = _jacobian_norm(layer, (3, *grid))
    assert cert == pytest.approx(measured, rel=1e-9, abs=1e-12)  # exact, not merely an upper bound
    fft = conv_operator_norm(kernel, grid, padding_mode="zeros")  # the bound on the (n + k - 1) grid
    assert cert <= fft + 1e-12
    plain = torch.nn.Conv2d(3, 4, k, padding="same", bias=False).double()
    with torch.no_grad():
        plain.weight.copy_(kernel)
    assert critics.certify(plain, (3, *grid)) == pytest.approx(cert, rel=1e-12)
    assert _jacobian_norm(plain, (3, *grid)) == pytest.approx(cert, rel=1e-9, abs=1e-12)  # torch pads as we do


def test_a_plain_convolution_that_pads_more_keeps_a_valid_certificate() -> None:
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(2, 3, 3, padding=2, bias=False).double()  # a "full" convolution: not "same"
    measured = _jacobian_norm(conv, (2, 2, 2))
    assert critics.certify(conv, (2, 2, 2)) >= measured - 1e-12


def test_the_exact_certificate_is_tighter_where_the_fft_bound_is_loose() -> None:
    torch.manual_seed(5)
    kernel = torch.randn(4, 4, 3, 3, dtype=torch.float64)
    exact = same_conv_operator_norm(kernel, (1, 1), "zeros")
    assert exact == pytest.approx(float(torch.linalg.matrix_norm(kernel[:, :, 1, 1], ord=2)), rel=1e-12)
    assert exact < 0.9 * conv_operator_norm(kernel, (1, 1), "zeros")  # only the centre tap meets a 1 x 1 image
