"""The training objectives: the KR gap and the WGAN-GP penalty against closed forms."""

import torch
from torch import nn

from wdist.objectives import gradient_penalty, kr_gap


def test_kr_gap_is_the_difference_of_means():
    fp, fq = torch.tensor([1.0, 2.0, 6.0]), torch.tensor([[0.5], [1.5]])
    assert float(kr_gap(fp, fq)) == 3.0 - 1.0


def test_penalty_of_a_linear_critic_is_its_norm_minus_one_squared():
    torch.manual_seed(0)
    critic = nn.Linear(5, 1, dtype=torch.float64)
    norm = float(critic.weight.norm())
    xp, xq = torch.randn(7, 5, dtype=torch.float64), torch.randn(9, 5, dtype=torch.float64)
    gp = gradient_penalty(critic, xp, xq, torch.Generator().manual_seed(1))
    assert abs(float(gp) - (norm - 1.0) ** 2) < 1e-12


def test_penalty_is_differentiable_and_seeded():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    xp, xq = torch.randn(4, 3), torch.randn(4, 3)
    a = gradient_penalty(critic, xp, xq, torch.Generator().manual_seed(3))
    b = gradient_penalty(critic, xp, xq, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a.backward()
    weights = [critic[0].weight, critic[2].weight]  # the last bias does not change the gradient
    assert all(w.grad is not None and bool(torch.isfinite(w.grad).all()) and w.grad.abs().sum() > 0 for w in weights)
