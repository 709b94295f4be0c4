"""Conv-net critics of the rescaled and residual families: AOL convolutions, SLL and CPL blocks.

All share the LipConvnet skeleton of :mod:`critics.architectures.lipconvnet`
(:func:`~critics.architectures._stages.lipconvnet_critic`; flat chains, so :func:`critics.certify`
applies; the residual blocks certify themselves)::

    stage_i = [PadToMultiple(2)] -> InvertibleDownsample(2) -> AOL conv (4 c_{i-1} -> c_i) -> activation
              -> depth x block(c_i)
    critic  = stage_1 -> ... -> stage_S -> Flatten -> BjorckLinear (-> 1)

with ``block`` an AOL convolution + activation (``aol-convnet``) or one residual block with its
ReLU inside (``sll-convnet``, ``cpl-convnet``). Widths 64-128-256-512 times ``width`` and stage
counts as in :mod:`critics.architectures.dcgan`.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from critics._checks import check_int
from critics._docstrings import fill_doc
from critics._registry import register_critic
from critics.architectures._stages import lipconvnet_critic
from critics.layers.aol import AOLConv2d
from critics.layers.cpl import CPLConv2d
from critics.layers.sll import SLLConv2d

__all__ = ["aol_convnet", "sll_convnet", "cpl_convnet"]


def _create_convnet(
    name: str,
    input_shape: tuple[int, ...],
    width: float | None,
    depth: int,
    activation: str,
    kernel_size: int,
    block: Callable[[int, int, int], nn.Module],
    activated: bool,
) -> nn.Sequential:
    """The shared skeleton with AOL channel changes; one depth step at width ``c`` is
    ``block(c, c, kernel_size)``, followed by the activation when ``activated`` (the residual blocks
    carry their own ReLU)."""
    check_int(name, "kernel_size", kernel_size)
    return lipconvnet_critic(
        name,
        input_shape,
        width,
        depth,
        activation,
        lambda c_in, c_out, grid: AOLConv2d(c_in, c_out, kernel_size),
        lambda c, grid: block(c, c, kernel_size),
        activated,
    )


@register_critic("aol-convnet")
@fill_doc
def aol_convnet(
    input_shape: tuple[int, ...],
    width: float | None = None,
    depth: int = 1,
    activation: str = "maxmin",
    kernel_size: int = 3,
) -> nn.Sequential:
    r"""A conv net of :class:`~critics.layers.AOLConv2d` layers (zero padding) and MaxMin.

    .. math::

        \text{stage}_i = (\sigma \circ \mathrm{AOL}_{c_i \to c_i})^{\text{depth}} \circ
            \sigma \circ \mathrm{AOL}_{4 c_{i-1} \to c_i} \circ \mathcal{U}, \qquad
        f = h \circ \text{stage}_S \circ \cdots \circ \text{stage}_1

    Lipschitz bound: product of per-layer certificates (float64 FFT bound per AOL conv, each
    :math:`\le 1` whatever the weights, usually below: AOL is not gradient-norm preserving; SVD
    for the head), L2.

    %(image_shape)s

    Parameters
    ----------
    %(input_shape)s
    %(width)s
    depth : int
        Channel-preserving AOL convolutions per stage (>= 0).
    %(sorting_activation)s
    kernel_size : int
        Of every AOL convolution.

    References
    ----------
    .. [1] Prach & Lampert, "Almost-orthogonal layers for efficient general-purpose Lipschitz
       networks", ECCV 2022, arXiv:2208.03160.
    """
    return _create_convnet("aol-convnet", input_shape, width, depth, activation, kernel_size, AOLConv2d, True)


@register_critic("sll-convnet")
@fill_doc
def sll_convnet(
    input_shape: tuple[int, ...],
    width: float | None = None,
    depth: int = 1,
    activation: str = "maxmin",
    kernel_size: int = 3,
) -> nn.Sequential:
    r"""A conv net of :class:`~critics.layers.SLLConv2d` residual blocks, AOL channel changes between stages.

    .. math::

        \text{stage}_i = \mathrm{SLL}_{c_i}^{\text{depth}} \circ \sigma \circ
            \mathrm{AOL}_{4 c_{i-1} \to c_i} \circ \mathcal{U}, \qquad
        \mathrm{SLL}(x) = x - 2 W T^{-1} \mathrm{ReLU}(W^\top x + b)

    (the SLL blocks carry their own ReLU; ``activation`` follows the channel-changing AOL
    convolution). Hidden width of each block = its channels.

    Lipschitz bound: product of per-layer certificates: :math:`\max(1, 2\rho - 1)` per SLL block
    (its SDP condition checked on the weights used, :meth:`SLLConv2d.sdp_ratio
    <critics.layers.SLLConv2d.sdp_ratio>`), the AOL FFT bounds, the head's SVD; L2.

    %(image_shape)s

    Parameters
    ----------
    %(input_shape)s
    %(width)s
    depth : int
        SLL blocks per stage (>= 0).
    %(sorting_activation)s
    kernel_size : int
        Odd, of the SLL blocks and the AOL convolutions.

    References
    ----------
    .. [1] Araujo, Havens, Delattre, Allauzen & Hu, "A unified algebraic perspective on Lipschitz
       neural networks", ICLR 2023, arXiv:2303.03169.
    """
    return _create_convnet("sll-convnet", input_shape, width, depth, activation, kernel_size, SLLConv2d, False)


@register_critic("cpl-convnet")
@fill_doc
def cpl_convnet(
    input_shape: tuple[int, ...],
    width: float | None = None,
    depth: int = 1,
    activation: str = "maxmin",
    kernel_size: int = 3,
) -> nn.Sequential:
    r""":func:`sll_convnet` with :class:`~critics.layers.CPLConv2d` blocks
    (:math:`x - \tfrac{2}{\bar s^2} W \mathrm{ReLU}(W^\top x + b)`, :math:`\bar s` a Gram-iteration
    bound on :math:`\|W\|`).

    Lipschitz bound: as for :func:`sll_convnet` (each CPL block :math:`\max(1, 2\rho - 1)`, its
    :math:`\rho = \|W\|^2 / \bar s^2` checked in float64); L2.

    %(image_shape)s

    Parameters
    ----------
    %(input_shape)s
    %(width)s
    depth : int
        CPL blocks per stage (>= 0).
    activation : str
        After each channel-changing AOL convolution.
    kernel_size : int
        Odd.

    References
    ----------
    .. [1] Meunier, Delattre, Araujo & Allauzen, "A dynamical system perspective for Lipschitz
       neural networks", ICML 2022, arXiv:2110.12690.
    """
    return _create_convnet("cpl-convnet", input_shape, width, depth, activation, kernel_size, CPLConv2d, False)
