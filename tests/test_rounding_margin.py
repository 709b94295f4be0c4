"""Every certified norm is rounded up by its stated margin, so that it is never below the exact norm.

The references are the exact largest singular values of the same float64 matrices, computed with
mpmath at 40 significant digits (the float64 entries are exact inputs there). A certificate must be
at least that reference, and at most the reference raised by the margin c * n * eps plus a few ulps.
The same operators are also given to the float64 routines with their rounding perturbed (transposed,
permuted, float32 weights): the results spread by a few ulps, and the certificate covers them all.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

import critics
from critics.layers import SOCConv2d
from critics.layers.soc import exp_tail_bound
from critics.norms import (
    ROUNDING_C,
    conv_matrix,
    conv_operator_norm,
    dense_lipschitz_bound,
    residual_sdp_bound,
    round_up,
    rounding_margin,
    same_conv_operator_norm,
)

EPS = torch.finfo(torch.float64).eps


def exact_norm(matrix: torch.Tensor) -> mpmath.mpf:
    """The largest singular value of a float64 matrix, to 40 significant digits (mpmath)."""
    with mpmath.workdps(40):
        a = mpmath.matrix(matrix.detach().to(torch.float64).tolist())
        return max(mpmath.svd_r(a, compute_uv=False))


def within_margin(cert: float, exact: mpmath.mpf, n: int, slack_ulps: int = 8) -> bool:
    """``exact <= cert <= exact (1 + c n eps) + a few ulps``."""
    upper = float(exact) * (1 + rounding_margin(n)) * (1 + slack_ulps * EPS)
    return mpmath.mpf(cert) >= exact and cert <= upper


def test_round_up_raises_by_exactly_the_stated_margin() -> None:
    assert rounding_margin(10) == ROUNDING_C * 10 * EPS
    assert rounding_margin(10, torch.float32) == ROUNDING_C * 10 * torch.finfo(torch.float32).eps
    for v in (1e-300, 0.08064087130644693, 1.0, 3.5e12):
        up = round_up(v, 7)
        assert up > v * (1 + rounding_margin(7)) * (1 - EPS)
        assert up <= v * (1 + rounding_margin(7)) * (1 + 2 * EPS)
    assert round_up(0.0, 5) == 0.0 and math.isinf(round_up(math.inf, 5))


@pytest.mark.parametrize("seed", range(12))
def test_dense_certificate_covers_the_exact_norm_and_every_rounding_of_it(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    m, n = (int(v) for v in torch.randint(1, 10, (2,), generator=g))
    w = torch.randn(m, n, generator=g, dtype=torch.float64) * 10.0 ** float(torch.randint(-3, 4, (1,), generator=g))
    exact = exact_norm(w)
    cert = dense_lipschitz_bound(w)
    assert within_margin(cert, exact, max(m, n)), (cert, exact)
    # the same operator with its rounding perturbed: transposed, rows and columns permuted
    variants = [w.T, w[torch.randperm(m, generator=g)], w[:, torch.randperm(n, generator=g)]]
    raw = [float(torch.linalg.svdvals(v)[0]) for v in [w, *variants]]
    assert max(raw) - min(raw) <= rounding_margin(max(m, n)) * float(exact)  # the spread is inside the margin
    assert all(cert >= r for r in raw) and all(dense_lipschitz_bound(v) >= exact for v in variants)
    # float32 weights: the certificate is of the float32 values the layer uses
    w32 = w.float()
    assert within_margin(dense_lipschitz_bound(w32), exact_norm(w32.double()), max(m, n))


@pytest.mark.parametrize("seed", range(6))
def test_soc_one_pixel_norm_covers_the_exact_norm(seed: int) -> None:
    """The case that failed on another machine: a 1 x 1 zero-padded grid, where the certificate is
    the centre tap's norm (4e-17 below the exact norm there without the margin)."""
    torch.manual_seed(seed)
    layer = SOCConv2d(8, 8, 3, dtype=torch.float64).eval()
    with torch.no_grad():
        centre = conv_matrix(layer.weight, (1, 1))
    exact = exact_norm(centre)
    s = layer.operator_norm_bound((8, 1, 1))
    assert within_margin(s, exact, 8 + 8 + 1), (s, exact)
    # the layer's certificate, 1 + the series tail, is at least 1 + the exact tail of the exact norm
    with mpmath.workdps(40):
        tail = mpmath.nsum(lambda i: exact**i / mpmath.factorial(i), [layer.terms, mpmath.inf])
        assert mpmath.mpf(layer.lipschitz_bound((8, 1, 1))) >= 1 + tail


@pytest.mark.parametrize(("grid", "k", "c"), [((2, 2), 3, 3), ((3, 2), 2, 2), ((4, 4), 3, 2)])
def test_small_grid_conv_certificate_covers_the_exact_operator_norm(grid: tuple, k: int, c: int) -> None:
    torch.manual_seed(sum(grid) + k + c)
    kernel = torch.randn(c, c, k, k, dtype=torch.float64)
    a = conv_matrix(kernel, grid, "zeros")  # entries are single taps (no folding): exact in float64
    exact = exact_norm(a)
    cert = same_conv_operator_norm(kernel, grid, padding_mode="zeros")
    assert within_margin(cert, exact, c * grid[0] * grid[1] + k * k)
    # plain nn.Conv2d padded "same" goes through the same rule in critics.certify
    conv = torch.nn.Conv2d(c, c, k, padding="same", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(kernel)
    assert mpmath.mpf(critics.certify(conv, (c, *grid))) >= exact


@pytest.mark.parametrize("seed", range(3))
def test_fft_certificate_covers_the_exact_circular_norm(seed: int) -> None:
    torch.manual_seed(seed)
    kernel = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    grid = (4, 3)
    exact = exact_norm(conv_matrix(kernel, grid, "circular"))
    cert = conv_operator_norm(kernel, grid, padding_mode="circular")
    assert within_margin(cert, exact, grid[0] * grid[1] + 2 + 3)
    # the kernel transposed (the adjoint operator, same norm) and in float32: still covered
    adjoint = kernel.transpose(0, 1).flip(-2, -1)
    assert mpmath.mpf(conv_operator_norm(adjoint, grid, padding_mode="circular")) >= exact
    k32 = kernel.float()
    exact32 = exact_norm(conv_matrix(k32.double(), grid, "circular"))
    assert mpmath.mpf(conv_operator_norm(k32, grid, "circular")) >= exact32


def test_products_sums_and_series_are_rounded_up() -> None:
    torch.manual_seed(0)
    f = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3), torch.nn.Linear(3, 1))
    report = critics.certificate_report(f, (5,))
    with mpmath.workdps(40):
        product = mpmath.fprod([mpmath.mpf(layer.bound) for layer in report.layers])
    assert mpmath.mpf(report.total) >= product
    assert report.total <= float(product) * (1 + rounding_margin(len(report.layers))) * (1 + 2 * EPS)
    # the series tail: at least the exact sum of the same terms
    for s, terms in ((0.7, 6), (0.3, 12), (1.9, 4)):
        with mpmath.workdps(40):
            exact_tail = mpmath.nsum(lambda i: mpmath.mpf(s) ** i / mpmath.factorial(i), [terms, mpmath.inf])
        assert mpmath.mpf(exp_tail_bound(s, terms)) >= exact_tail
    # the residual SDP bound: 2 rho - 1 rounded up above 1, exactly 1 at or below
    assert residual_sdp_bound(1.0) == 1.0 and mpmath.mpf(residual_sdp_bound(1.3)) >= mpmath.mpf(1.3) * 2 - 1


def test_an_orthogonal_critic_is_certified_at_one_plus_rounding() -> None:
    """With the margin an orthogonal critic's certificate is 1 + O(eps), not 1: still certified."""
    torch.manual_seed(0)
    f = critics.build("bjorck-mlp", input_shape=(6,), width=16, depth=3)
    L = critics.certify(f, (6,))
    assert abs(L - 1.0) <= 1e-3
