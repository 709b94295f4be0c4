"""Certificates against exact Jacobians (float64): dense layers and small Conv2d chains."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import certifies_exactly
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

import critics
from critics.certificates import CertificationError, certificate_report, certify, dense_lipschitz_bound
from critics.layers import BjorckLinear, MaxMin


def _jacobian_sigma_max(model: nn.Module, x: torch.Tensor) -> float:
    """Largest singular value of the Jacobian of ``model`` at one sample ``x`` (no batch dim)."""
    shape = x.shape
    jac = torch.autograd.functional.jacobian(lambda z: model(z.view(1, *shape)).flatten(), x.flatten())
    return float(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1))[0])


@pytest.mark.parametrize("in_f,out_f", [(7, 5), (5, 7), (6, 6)])
def test_dense_bound_equals_jacobian_sigma_max(in_f: int, out_f: int) -> None:
    layer = nn.Linear(in_f, out_f).double()
    sigma = _jacobian_sigma_max(layer, torch.randn(in_f, dtype=torch.float64))
    # the Jacobian's own float64 SVD rounds too: it may sit a few ulps above the exact norm (tol)
    assert certifies_exactly(dense_lipschitz_bound(layer.weight), sigma * (1 - 1e-14), max(in_f, out_f), 2e-14)
    assert certifies_exactly(critics.certify(layer, (in_f,)), sigma * (1 - 1e-14), max(in_f, out_f) + 1, 2e-14)


def test_dense_chain_bound_dominates_jacobian() -> None:
    model = nn.Sequential(
        nn.Linear(6, 10), nn.LeakyReLU(0.2), nn.Sequential(nn.Linear(10, 4), nn.ReLU()), nn.Linear(4, 1)
    ).double()
    cert = critics.certify(model, (6,))
    for _ in range(5):
        assert _jacobian_sigma_max(model, torch.randn(6, dtype=torch.float64)) <= cert * (1 + 1e-12)
    report = critics.certificate_report(model, (6,))
    assert [layer.name for layer in report.layers] == ["0", "1", "2.0", "2.1", "3"]
    assert report.total == pytest.approx(cert)


@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
def test_circular_stride1_conv_certificate_is_exact(kernel: int) -> None:
    conv = nn.Conv2d(2, 3, kernel, padding="same", padding_mode="circular", bias=True).double()
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    sigma = _jacobian_sigma_max(conv, x)
    assert abs(critics.certify(conv, (2, 6, 6)) - sigma) < 1e-6


@pytest.mark.parametrize(
    "kernel,padding,mode,stride",
    [
        (3, 1, "zeros", 1),
        (3, 0, "zeros", 1),
        (4, 1, "zeros", 2),
        (3, 3, "zeros", 1),
        (2, 0, "circular", 1),
        (4, 1, "circular", 2),
        (1, 1, "circular", 1),
        (3, 2, "circular", 1),
    ],
)
def test_conv_certificate_dominates_jacobian(kernel: int, padding: int, mode: str, stride: int) -> None:
    conv = nn.Conv2d(2, 3, kernel, padding=padding, padding_mode=mode, stride=stride).double()
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    assert _jacobian_sigma_max(conv, x) <= critics.certify(conv, (2, 5, 5)) * (1 + 1e-10)


def test_conv_chain_certificate_dominates_jacobian() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular"),
        MaxMin(),
        nn.Conv2d(4, 4, 4, padding=1, stride=2),
        nn.ReLU(),
        nn.PixelUnshuffle(2),
        nn.Flatten(),
        nn.Linear(16 * 2 * 2, 1),
    ).double()
    cert = critics.certify(model, (2, 8, 8))
    for _ in range(3):
        assert _jacobian_sigma_max(model, torch.randn(2, 8, 8, dtype=torch.float64)) <= cert * (1 + 1e-10)


def test_reflect_padding_is_refused() -> None:
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(CertificationError, match="reflect"):
        critics.certify(conv, (2, 5, 5))


def test_unknown_module_is_refused() -> None:
    with pytest.raises(CertificationError, match="GELU"):
        critics.certify(nn.Sequential(nn.Linear(3, 3), nn.GELU()), (3,))


def test_parametrised_layers_certify_in_eval_mode_and_restore_modes() -> None:
    sn = spectral_norm(nn.Linear(6, 6))
    model = nn.Sequential(BjorckLinear(6, 6), MaxMin(), sn, nn.ReLU())
    model.train()
    model[1].eval()  # mixed modes must be restored one by one
    u_before = sn.parametrizations.weight[0]._u.clone()
    report = critics.certificate_report(model, (6,))
    assert [layer.kind for layer in report.layers] == ["BjorckLinear", "MaxMin", "Linear", "ReLU"]
    assert torch.equal(sn.parametrizations.weight[0]._u, u_before), "certify ran power iteration"
    assert [m.training for m in model] == [True, False, True, True]
    sn.eval()
    assert report.layers[2].bound == pytest.approx(dense_lipschitz_bound(sn.weight), rel=1e-12)


def test_a_layer_placed_twice_counts_twice() -> None:
    """Sequential(lin, ReLU, lin) with ||W|| = 2: Lip = 4 (x -> 4x on the positive orthant),
    so the certificate must be 4, not 2 (one factor per place in the chain)."""
    lin = nn.Linear(3, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(2 * torch.eye(3, dtype=torch.float64))
    model = nn.Sequential(lin, nn.ReLU(), lin)
    report = certificate_report(model, (3,))
    assert [layer.name for layer in report.layers] == ["0", "1", "2"]
    assert certify(model, (3,)) == pytest.approx(4.0, rel=1e-12)
    x = torch.rand(3, dtype=torch.float64)
    assert _jacobian_sigma_max(model, x) == pytest.approx(4.0, rel=1e-12)


def test_sequential_subclass_with_its_own_forward_is_refused() -> None:
    """A residual block x + seq(x) has Lip up to 2; the product rule would say 1."""

    class Residual(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + super().forward(x)

    model = nn.Sequential(Residual(nn.Linear(3, 3), nn.ReLU()), nn.Linear(3, 1))
    with pytest.raises(CertificationError, match="Residual.*own forward"):
        certify(model, (3,))
