"""SOCConv2d at its intended norm: the per-frequency scaling bound on the input grid, and the
certified norm bound it rests on (:func:`critics.norms.conv_frequency_norm_bound`)."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import jacobian, train_steps

from critics.architectures.lipconvnet import soc_lipconvnet
from critics.certificates import certify
from critics.layers import SOCConv2d
from critics.layers.conv_base import same_padding
from critics.norms import (
    conv_frequency_norm_bound,
    conv_grid_norm_bound,
    conv_matrix,
    crop_to_reach,
    reshaped_kernel_norm_bound,
)

C, N = 16, 8
TARGET = 0.7  # max_norm, the design's norm of the skew-symmetric convolution
REACHED = 0.85  # the fraction of it the exact norm must reach after training steps


def skew_conv_norm(layer: SOCConv2d, n: int = N) -> float:
    """Exact L2 norm of the scaled skew-symmetric convolution C_L~ the forward uses, from its
    explicit Jacobian on (C, n, n) inputs (float64, the layer's padding)."""
    c, k = layer.channels, layer.kernel_size
    conv = torch.nn.Conv2d(
        c, c, k, padding=k // 2, padding_mode=layer.padding_mode, bias=False, dtype=torch.float64,
        device=layer.weight.device,
    )  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(layer.weight)
    return float(torch.linalg.svdvals(jacobian(conv, c, n)).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_kernel_reaches_its_target_norm(dtype: torch.dtype, device: torch.device) -> None:
    """After 5 Adam steps, C = 16, 3 x 3 kernel, 8 x 8 input: the exact norm of the scaled
    skew-symmetric convolution is >= 85% of the target max_norm = 0.7 (0.595) and never above it,
    in both modes; the certificate stays above the exact Jacobian norm of the layer. The
    input-size-independent reshaped bound alone leaves it below 0.6 of the target."""
    layer = train_steps(SOCConv2d(C, C, 3, input_size=(N, N), dtype=dtype, device=device), C, C, steps=5)
    plain = train_steps(SOCConv2d(C, C, 3, dtype=dtype, device=device), C, C, steps=5)
    rounding = 2e-5 if dtype == torch.float32 else 1e-10
    for mode in (True, False):
        layer.train(mode)
        s = skew_conv_norm(layer)
        assert REACHED * TARGET <= s <= TARGET * (1 + rounding)
        assert s <= layer.operator_norm_bound((C, N, N)) + rounding
        jac_norm = float(torch.linalg.svdvals(jacobian(layer, C)).max())
        assert 1 - rounding <= jac_norm <= layer.lipschitz_bound((C, N, N)) + rounding
        plain.train(mode)
        assert skew_conv_norm(plain) < 0.6 * TARGET


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
@pytest.mark.parametrize("k,n", [(3, 8), (5, 8), (5, 2), (5, 1), (3, 1), (2, 5), (4, 3)])
def test_frequency_bound_is_a_tight_bound(k: int, n: int, padding_mode: str) -> None:
    """>= the exact norm (explicit Jacobian of the padded convolution), within 2% of the circular
    norm on its grid (6 Gram squarings), below the reshaped-kernel bound, and differentiable."""
    if padding_mode == "circular" and k % 2 == 0:
        pytest.skip("circular even kernels are covered by the zero-padding rows")
    cin, cout = 3, 5
    kernel = torch.randn(cout, cin, k, k, dtype=torch.float64, requires_grad=True)
    bound_t = conv_frequency_norm_bound(kernel, (n, n), padding_mode, gram_iters=6)
    bound = bound_t.item()
    conv = torch.nn.Conv2d(cin, cout, k, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(kernel)

    def padded(x: torch.Tensor) -> torch.Tensor:
        if padding_mode == "zeros":
            return conv(torch.nn.functional.pad(x, same_padding(k)))
        # circular, whatever k and n: tile the input, convolve without padding, keep the middle
        t, before = -(-k // n), (k - 1) // 2
        y = conv(x.repeat(1, 1, 2 * t + 1, 2 * t + 1))
        start = t * n - before
        return y[..., start : start + n, start : start + n]

    basis = torch.eye(cin * n * n, dtype=torch.float64).reshape(-1, cin, n, n)
    with torch.no_grad():
        exact = float(torch.linalg.svdvals(padded(basis).reshape(cin * n * n, -1)).max())
    assert exact <= bound * (1 + 1e-12)
    assert bound <= float(reshaped_kernel_norm_bound(kernel.detach())) * (1 + 1e-12)
    if padding_mode == "circular":
        assert bound <= exact * 1.02  # the exact operator norm on the n x n grid
    bound_t.backward()
    assert kernel.grad is not None and torch.isfinite(kernel.grad).all() and kernel.grad.abs().sum() > 0
    grid = conv_grid_norm_bound(kernel.detach(), (n, n), padding_mode, gram_iters=6).item()
    assert exact * (1 - 1e-12) <= grid <= bound * (1 + 1e-12)
    if padding_mode == "zeros" and n <= 2 and k <= 3:  # the explicit matrix: the operator's own norm
        assert grid <= exact * 1.02


@pytest.mark.parametrize("padding_mode,n", [("circular", 8), ("zeros", 2)])
def test_grid_bound_gradient_is_that_of_the_norm(padding_mode: str, n: int) -> None:
    """The gradient of conv_grid_norm_bound (frequency route on 8 x 8 circular, explicit matrix on
    2 x 2 zero-padded) is the derivative of the exact norm: central differences of the float64
    norm (explicit Jacobian) along random directions agree to 2%."""
    kernel = torch.randn(6, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    conv_grid_norm_bound(kernel, (n, n), padding_mode).backward()

    def exact(k: torch.Tensor) -> float:
        basis = torch.eye(6 * n * n, dtype=torch.float64).reshape(-1, 6, n, n)
        if padding_mode == "circular":
            y = torch.nn.functional.conv2d(torch.nn.functional.pad(basis, same_padding(3), mode="circular"), k)
        else:
            y = torch.nn.functional.conv2d(torch.nn.functional.pad(basis, same_padding(3)), k)
        return float(torch.linalg.svdvals(y.reshape(6 * n * n, -1)).max())

    eps = 1e-6
    for _ in range(3):
        d = torch.randn_like(kernel)
        fd = (exact(kernel.detach() + eps * d) - exact(kernel.detach() - eps * d)) / (2 * eps)
        assert float((kernel.grad * d).sum()) == pytest.approx(fd, rel=2e-2, abs=1e-6)


@pytest.mark.parametrize("k,h,w", [(3, 4, 5), (5, 2, 3), (2, 3, 4), (1, 3, 3), (5, 1, 1)])
def test_conv_matrix_is_the_zero_padded_convolution(k: int, h: int, w: int) -> None:
    kernel = torch.randn(2, 3, k, k, dtype=torch.float64)
    x = torch.randn(3, h, w, dtype=torch.float64)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x[None], same_padding(k)), kernel)[0]
    assert torch.allclose(conv_matrix(kernel, (h, w)) @ x.reshape(-1), y.reshape(-1), atol=1e-12)


@pytest.mark.parametrize("k,n", [(5, 1), (5, 2), (7, 3), (4, 2), (3, 8)])
def test_crop_to_reach_keeps_the_zero_padded_operator(k: int, n: int) -> None:
    kernel = torch.randn(4, 3, k, k, dtype=torch.float64)
    cropped = crop_to_reach(kernel, (n, n))
    assert cropped.shape[-1] == min(k, 2 * n - 1) or k % 2 == 0
    x = torch.randn(2, 3, n, n, dtype=torch.float64)
    full = torch.nn.functional.conv2d(torch.nn.functional.pad(x, same_padding(k)), kernel)
    kc = cropped.shape[-1]
    before = (k - 1) // 2 - max(0, (k - 1) // 2 - (n - 1))  # taps kept before the centre
    pad = (before, kc - 1 - before, before, kc - 1 - before)
    assert torch.allclose(torch.nn.functional.conv2d(torch.nn.functional.pad(x, pad), cropped), full, atol=1e-12)


def test_input_size_checked_and_kept() -> None:
    for bad in ((0, 8), (8,), "8x8", (8.0, 8), (True, 8)):
        with pytest.raises(ValueError, match="input_size"):
            SOCConv2d(4, 4, 3, input_size=bad)  # type: ignore[arg-type]
    layer = SOCConv2d(4, 4, 3, input_size=(6, 5))
    assert layer.input_size == (6, 5) and "input_size=(6, 5)" in repr(layer)


def test_lipconvnet_scales_each_soc_on_its_grid() -> None:
    """Each SOC of the critic gets its stage's grid (8 -> 4, 2, 1 after the unshuffles; 7 is padded
    to 8) where the bound costs at most ``grid_cost`` times its series (default 3; at 1 not the
    2 x 2 stage, whose explicit 256 x 256 matrix costs 2.8 times). With every grid, after training steps
    the exact norm of each skew-symmetric convolution on its grid (explicit Jacobians, C up to
    128) is at most the target 0.7 and at least 85% of it on the 2 x 2 and 1 x 1 grids (the
    explicit-matrix bound), at least 70% on 4 x 4 (the per-frequency bound on the 6 x 6 circular
    grid, about 0.55 there: the zero-padded restriction is smaller); the critic's certificate is
    that of 1-Lipschitz layers up to the series tails and rounding."""
    for side in (8, 7):
        critic = soc_lipconvnet((1, side, side), width=0.25, depth=0)
        assert [m.input_size for m in critic.modules() if isinstance(m, SOCConv2d)] == [(4, 4), (2, 2), (1, 1)]
    for cost, grids in ((1, [(4, 4), None, (1, 1)]), (0, [None] * 3)):
        critic = soc_lipconvnet((1, 8, 8), width=0.25, depth=0, grid_cost=cost)
        assert [m.input_size for m in critic.modules() if isinstance(m, SOCConv2d)] == grids
    with pytest.raises(ValueError, match="grid_cost.*-1"):
        soc_lipconvnet((1, 8, 8), grid_cost=-1)
    critic = train_steps_critic(soc_lipconvnet((1, 8, 8), width=0.25, depth=1, grid_cost=float("inf"))).eval()
    for layer in (m for m in critic.modules() if isinstance(m, SOCConv2d)):
        n = layer.input_size[0]
        reached = REACHED if n <= 2 else 0.7
        assert reached * layer.max_norm <= skew_conv_norm(layer, n) <= layer.max_norm * (1 + 2e-5)
    assert certify(critic, (1, 8, 8)) == pytest.approx(1.0, abs=1e-6)  # the head: a float32 Björck matrix


def train_steps_critic(critic: torch.nn.Module, steps: int = 3) -> torch.nn.Module:
    """A few Adam steps pushing the critic apart on two random batches."""
    opt = torch.optim.Adam(critic.parameters(), lr=0.01)
    critic.train()
    for _ in range(steps):
        loss = critic(torch.randn(8, 1, 8, 8)).mean() - critic(torch.randn(8, 1, 8, 8) + 1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return critic


def test_certified_norm_on_a_one_pixel_grid_is_the_exact_norm() -> None:
    """On a 1 x 1 zero-padded grid only the centre tap meets the image: the certified norm is that
    tap's spectral norm, not the (n + k - 1) circular bound of the whole kernel."""
    torch.manual_seed(0)
    layer = SOCConv2d(8, 8, 3, dtype=torch.float64).eval()
    with torch.no_grad():
        exact = torch.linalg.matrix_norm(conv_matrix(layer.weight, (1, 1)), ord=2).item()
        whole = torch.linalg.matrix_norm(conv_matrix(layer.weight, (3, 3)), ord=2).item()
    s = layer.operator_norm_bound((8, 1, 1))
    assert exact <= s <= exact * (1 + 1e-9)
    assert s < whole  # the kernel's other taps would give a larger (looser) bound
