"""Image critics from the registry: shapes, gradients, and certificate vs measured gradient norms."""

from __future__ import annotations

import pytest
import torch

import critics

CONSTRAINED = [
    "bcop-dcgan",
    "soc-lipconvnet",
    "rko-dcgan",
    "aoc-dcgan",
    "cayley-dcgan",
    "aol-convnet",
    "sll-convnet",
    "cpl-convnet",
]
ALL = CONSTRAINED + ["ossn-dcgan", "gp-dcgan"]
SHAPES = [(1, 8, 8), (3, 32, 32), (3, 48, 48), (3, 64, 64)]


def width_for(shape: tuple[int, int, int]) -> float:
    return 0.25 if shape[-1] <= 32 else 0.125  # small CPU configurations


def max_input_grad_norm(model: torch.nn.Module, shape: tuple[int, ...], n: int = 8) -> float:
    x = (2 * torch.rand(n, *shape) - 1).requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    return float(g.flatten(1).norm(dim=1).max())


def few_steps(model: torch.nn.Module, shape: tuple[int, ...], steps: int = 2) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(torch.randn(4, *shape)).mean() - model(torch.randn(4, *shape) + 0.5).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ALL)
def test_certificate_bounds_gradients(name: str, shape: tuple[int, int, int]) -> None:
    model = critics.build(name, shape, width=width_for(shape))
    few_steps(model, shape)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(3, *shape))
    assert y.shape == (3, 1) and torch.isfinite(y).all()
    cert = critics.certify(model, shape)
    grad = max_input_grad_norm(model, shape)
    assert cert >= grad * (1 - 1e-5), f"{name} {shape}: certificate {cert} < gradient norm {grad}"
    if name in CONSTRAINED:
        assert cert <= 1 + 1e-4, f"{name} {shape}: certificate {cert}"


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name: str) -> None:
    shape = (3, 32, 32)
    model = critics.build(name, shape, width=0.125).train()
    model(torch.randn(2, *shape)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"


def test_bcop_dcgan_matches_the_published_skeleton() -> None:
    model = critics.build("bcop-dcgan", (3, 64, 64), width=1.0)
    convs = [m for m in model.modules() if type(m).__name__ == "BCOPConv2d"]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (12, 64, 2),
        (256, 128, 2),
        (512, 256, 2),
        (1024, 512, 2),
    ]
    assert model.head.in_features == 512 * 4 * 4


def test_stage_plan_for_small_and_odd_inputs() -> None:
    digits = critics.build("bcop-dcgan", (1, 8, 8))  # default width 0.25 below 16 x 16
    assert [m.out_channels for m in digits.modules() if type(m).__name__ == "BCOPConv2d"] == [16, 32, 64]
    odd = critics.build("soc-lipconvnet", (3, 28, 28), width=0.125)  # 28 -> 14 -> 7 -> pad 8 -> 4 -> 2
    assert odd(torch.randn(2, 3, 28, 28)).shape == (2, 1)
    assert sum(type(m).__name__ == "PadToMultiple" for m in odd.modules()) == 1
    assert critics.certify(odd.eval(), (3, 28, 28)) <= 1 + 1e-4


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="input_shape must be \\(C, H, W\\)"):
        critics.build("bcop-dcgan", (64,))
    with pytest.raises(ValueError, match="width must be a positive multiplier"):
        critics.build("soc-lipconvnet", (3, 32, 32), width=0)
    with pytest.raises(ValueError, match="activation 'leakyrelu' is not allowed"):
        critics.build("bcop-dcgan", (3, 32, 32), activation="leakyrelu")
