"""Dense critics: Björck + GroupSort (certified 1-Lipschitz), WGAN-GP and spectral-norm baselines.

All three are flat ``nn.Sequential`` chains ``Flatten -> (Linear -> act) x depth -> Linear(., 1)``
so :func:`critics.certify` multiplies per-layer bounds. Any ``input_shape`` works (the input is
flattened to ``prod(input_shape)`` features).
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from critics._checks import check_int
from critics._docstrings import fill_doc
from critics._registry import register_critic
from critics.layers.activations import checked_activation
from critics.layers.bjorck import BjorckLinear

__all__ = ["bjorck_mlp", "gp_mlp", "sn_mlp"]


def _check_sizes(name: str, width: int, depth: int) -> None:
    check_int(name, "width", width)
    check_int(name, "depth", depth, minimum=0)


def _create_mlp(
    name: str,
    input_shape: tuple[int, ...],
    width: int,
    depth: int,
    activation: str,
    allowed_activations: tuple[str, ...],
    linear: type[nn.Module] | object,
) -> nn.Sequential:
    """``Flatten -> (linear(d_in, width) -> act) x depth -> linear(., 1)``; ``linear(i, o)`` builds a layer."""
    _check_sizes(name, width, depth)
    act = checked_activation(name, activation, allowed_activations, [int(width)])
    features = math.prod(int(s) for s in input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(int(depth)):
        layers += [linear(features, int(width)), act()]  # type: ignore[operator]
        features = int(width)
    layers.append(linear(features, 1))  # type: ignore[operator]
    return nn.Sequential(*layers)


@register_critic("bjorck-mlp", inputs="any")
@fill_doc
def bjorck_mlp(
    input_shape: tuple[int, ...],
    width: int = 256,
    depth: int = 3,
    activation: str = "maxmin",
    bjorck_iters: int | None = None,
) -> nn.Sequential:
    r"""Dense critic of :class:`~critics.layers.BjorckLinear` layers and sorting activations.

    .. math::

        f(x) = w^\top \sigma(W_L \cdots \sigma(W_1 \operatorname{vec}(x) + b_1) \cdots + b_L) + c,
        \qquad W_i^\top W_i = I \ \text{or} \ W_i W_i^\top = I, \ \|w\| = 1

    Gradient norm: with a sorting activation (``maxmin``, ``groupsortN``), every
    :math:`\sigma` has a permutation Jacobian and every :math:`W_i^\top` of a wide or square
    layer is an isometry, so :math:`\|\nabla f(x)\| = 1` almost everywhere **when**
    ``prod(input_shape) >= width`` (the first layer has orthonormal rows). If the input has fewer
    features than ``width``, the first layer has orthonormal columns and
    :math:`\nabla f = W_1^\top v` only keeps the component of :math:`v` in its range, so
    :math:`\|\nabla f\| \le 1`, usually < 1. ReLU loses norm as well.

    Lipschitz bound: the product of the float64 SVD norms of the weights actually used,
    :math:`1 + O(10^{-6})` in float32 (L2, via :func:`critics.certify`), tight when the gradient
    norm is preserved (see above).

    %(vector_shape)s

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; flattened.
    width : int
        Hidden width (divisible by the group size of the activation).
    depth : int
        Number of hidden layers (``depth + 1`` linear layers in all).
    %(sorting_activation)s
    bjorck_iters : int or None
        Björck iterations per training step (``None``: the layer default, 30 with early stop).

    References
    ----------
    .. [1] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    """
    return _create_mlp(
        "bjorck-mlp",
        input_shape,
        width,
        depth,
        activation,
        ("groupsort", "relu"),
        lambda i, o: BjorckLinear(i, o, bjorck_iters=bjorck_iters),
    )


@register_critic("gp-mlp", loss="wgan-gp", inputs="any")
@fill_doc
def gp_mlp(
    input_shape: tuple[int, ...],
    width: int = 256,
    depth: int = 3,
    activation: str = "leakyrelu",
) -> nn.Sequential:
    r"""Unconstrained dense critic for WGAN-GP (Lipschitz-ness only encouraged by the penalty).

    .. math::

        f(x) = w^\top \sigma(W_L \cdots \sigma(W_1 \operatorname{vec}(x) + b_1) \cdots) + c,
        \qquad \sigma = \mathrm{LeakyReLU}(0.2) \text{ or } \mathrm{ReLU}

    Lipschitz bound: :math:`\prod_i \sigma_{\max}(W_i)` (L2, float64 SVD), valid but usually far
    from tight; the raw estimate of such a critic is not a W1 bound until divided by it.

    %(vector_shape)s

    Parameters
    ----------
    %(gp_mlp_parameters)s

    References
    ----------
    %(gulrajani)s
    """
    return _create_mlp("gp-mlp", input_shape, width, depth, activation, ("leakyrelu", "relu"), nn.Linear)


@register_critic("sn-mlp", inputs="any")
@fill_doc
def sn_mlp(
    input_shape: tuple[int, ...],
    width: int = 256,
    depth: int = 3,
    activation: str = "leakyrelu",
) -> nn.Sequential:
    r"""Dense critic with spectrally normalised weights (``torch.nn.utils.parametrizations.spectral_norm``).

    .. math::

        W_i = V_i / \hat\sigma(V_i), \qquad \hat\sigma(V) = u^\top V v \le \sigma_{\max}(V)

    with :math:`(u, v)` from power iteration: :math:`\hat\sigma` is an estimate from *below*, so
    :math:`\sigma_{\max}(W_i) \ge 1` is possible and the certificate must be computed.

    Power iteration state: one iteration runs (updating the buffers ``_u``, ``_v`` in place) on
    every access of ``.weight`` **in training mode**; in eval mode the buffers are frozen and
    the weight is a fixed function of ``V``. :func:`critics.certify` runs its shape-recording
    forward and reads each weight in eval mode, so certifying does not change the weight: the
    certificate is for exactly the weight used by eval-mode forwards (checked in
    ``tests/test_mlp_critics.py``).

    Lipschitz bound: :math:`\prod_i \sigma_{\max}(W_i)` (L2, float64 SVD of the parametrised
    weight actually used), close to 1 per layer once power iteration has converged.

    %(vector_shape)s

    Parameters
    ----------
    %(gp_mlp_parameters)s

    References
    ----------
    .. [1] Miyato et al., "Spectral normalization for generative adversarial networks", ICLR 2018.
    """
    return _create_mlp(
        "sn-mlp",
        input_shape,
        width,
        depth,
        activation,
        ("leakyrelu", "relu"),
        lambda i, o: spectral_norm(nn.Linear(i, o)),
    )
