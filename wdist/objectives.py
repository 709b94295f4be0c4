r"""The critic's training objectives: the Kantorovich-Rubinstein gap and the WGAN-GP penalty.

A critic :math:`f` is trained to maximise the KR gap :math:`\mathbb{E}_P f - \mathbb{E}_Q f`
(its loss is the negated gap); a gradient-penalty critic adds
:math:`\lambda\, \mathbb{E}_{\hat x} (\|\nabla f(\hat x)\|_2 - 1)^2` (Gulrajani et al. 2017).
Both are used by :class:`wdist.system.CriticSystem` and by the benchmarks, so that a benchmark
trains with the same objective as ``wdist estimate``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["kr_gap", "gradient_penalty"]


def kr_gap(fp: Tensor, fq: Tensor) -> Tensor:
    r"""The Kantorovich-Rubinstein gap :math:`\frac1n \sum_i f(x_i) - \frac1m \sum_j f(y_j)`.

    Parameters
    ----------
    fp, fq : Tensor
        Critic values on a batch of P and of Q (any shapes; all entries are averaged), in the
        units of the samples' L2 distance when :math:`f` is 1-Lipschitz.

    Returns
    -------
    Tensor
        A scalar, differentiable in the critic's parameters.
    """
    return fp.mean() - fq.mean()


def gradient_penalty(critic: nn.Module, xp: Tensor, xq: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""WGAN-GP's penalty :math:`\frac1n \sum_i (\|\nabla_x f(\hat x_i)\|_2 - 1)^2` on interpolates.

    .. math::

        \hat x_i = t_i\, x^P_i + (1 - t_i)\, x^Q_i, \qquad t_i \sim U[0, 1],
        \quad i = 1 \dots n = \min(|x^P|, |x^Q|).

    Parameters
    ----------
    critic : nn.Module
        :math:`f`, mapping a batch ``(n, *shape)`` to ``(n, 1)`` or ``(n,)``.
    xp, xq : Tensor
        Batches of P and Q samples of one shape (the first ``n`` items of each are paired).
    generator : torch.Generator or None
        A CPU generator for :math:`t` (the weights are drawn on the CPU and moved to the samples'
        device, so that a seeded run draws the same interpolates on every device); ``None``: the
        global CPU stream.

    Returns
    -------
    Tensor
        A scalar (dimensionless), differentiable in the critic's parameters (``create_graph``).
    """
    n = min(xp.shape[0], xq.shape[0])
    t = torch.rand((n,) + (1,) * (xp.ndim - 1), generator=generator).to(device=xp.device, dtype=xp.dtype)
    x_hat = (t * xp[:n] + (1 - t) * xq[:n]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
