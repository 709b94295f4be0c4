"""DCGAN-shaped image critics: the BCOP protocol critic and its RKO / OSSN / WGAN-GP variants.

All are flat chains (nested ``nn.Sequential``) so :func:`critics.certify` applies::

    stage_i = [PadToMultiple(2) if H or W is odd] -> strided conv (k=4, s=2) -> activation
    critic  = stage_1 -> ... -> stage_S -> Flatten -> dense head (-> 1)

Lipschitz variants implement each strided conv as ``InvertibleDownsample(2)`` (pixel
unshuffle, orthogonal) followed by a stride-1 kernel-2 Lipschitz conv on 4x the channels, as in
the published critic; the WGAN-GP variant uses a plain ``nn.Conv2d(k=4, s=2, p=1)``.

Input sizes: S = min(4, number of halvings until a side drops below 2) stages, with widths
64-128-256-512 (times ``width``, rounded to an even count >= 2, since MaxMin pairs channels),
the first S of them. So 3x64x64 -> 4 stages ending at 512 x 4 x 4 (the published protocol);
3x32x32 -> 4 stages, 2 x 2; 3x48x48 -> 4 stages, 3 x 3; 1x8x8 -> 3 stages (64-128-256 times
width), 1 x 1. An odd side is zero-padded at the bottom/right to even before its stage
(:class:`~critics.layers.PadToMultiple`, an isometry), e.g. 28 -> 14 -> 7 -> pad 8 -> 4. Nothing is
upsampled: the published protocol's upsampling to 64 x 64 belongs to the data pipeline.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from critics._docstrings import fill_doc
from critics._registry import register_critic
from critics.architectures._stages import (
    BASE_WIDTHS,
    LIPSCHITZ_ACTIVATIONS,
    default_width,
    planned_stages,
    stage_plan,
    stage_widths,
    staged_critic,
)
from critics.layers.aoc import AOCConv2d
from critics.layers.bcop import BCOPConv2d
from critics.layers.bjorck import BjorckLinear
from critics.layers.cayley import CayleyConv2d
from critics.layers.downsample import strided_conv
from critics.layers.ossn import OSSNConv2d
from critics.layers.rko import RKOConv2d

__all__ = [
    "bcop_dcgan",
    "rko_dcgan",
    "ossn_dcgan",
    "gp_dcgan",
    "aoc_dcgan",
    "cayley_dcgan",
    "stage_plan",
    "stage_widths",
    "default_width",
    "BASE_WIDTHS",
]

def _create_dcgan(
    name: str,
    input_shape: tuple[int, ...],
    width: float | None,
    activation: str,
    conv: Callable[[int, int], nn.Module],
    bjorck_iters: int | None = None,
    head: Callable[[int], nn.Module] | None = None,
    allowed: tuple[str, ...] = LIPSCHITZ_ACTIVATIONS,
) -> nn.Sequential:
    """The shared skeleton; ``conv(c_in, c_out)`` builds one strided (halving) convolution and
    ``activation`` (one of the ``allowed`` kinds) follows each; the head is ``head(features)``, by
    default a :class:`~critics.layers.BjorckLinear` with ``bjorck_iters``."""
    plan, widths, act = planned_stages(name, input_shape, width, activation, allowed)
    if head is None:
        head = lambda features: BjorckLinear(features, 1, bjorck_iters=bjorck_iters)  # noqa: E731
    return staged_critic(input_shape, plan, widths, lambda i, o, grid: [conv(i, o), act()], head)


@register_critic("bcop-dcgan")
@fill_doc
def bcop_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "maxmin",
    bjorck_iters: int = 30,
) -> nn.Sequential:
    r"""The published BCOP protocol critic (Li et al. 2019): four strided BCOP convs and a Björck head.

    .. math::

        f = h \circ \sigma \circ \mathcal{C}_{K_4} \circ \mathcal{U} \circ \cdots \circ
            \sigma \circ \mathcal{C}_{K_1} \circ \mathcal{U}

    with :math:`\mathcal{U}` the 2x2 pixel unshuffle, :math:`\mathcal{C}_{K_i}` circular
    kernel-2 :class:`~critics.layers.BCOPConv2d` (exactly orthogonal, semi-orthogonal corner
    when channels change), :math:`\sigma` MaxMin and :math:`h` a
    :class:`~critics.layers.BjorckLinear` to one output. Stages and padding: see the module
    docstring (4 stages for 32/48/64-pixel inputs, 3 for 8 x 8).

    Lipschitz bound: product of the per-layer certificates (FFT-exact per conv, SVD for the
    head), :math:`1 + O(10^{-5})` in float32, L2 on the flattened image; it is :math:`\le 1`
    in exact arithmetic with converged Björck iterations.

    %(image_shape)s

    %(lipschitz_image_parameters)s
        ``maxmin`` is the published one.
    %(bjorck_iters)s

    References
    ----------
    .. [1] Li, Haddadi, Jacobsen, Grosse et al., "Preventing gradient attenuation in Lipschitz
       constrained convolutional networks", NeurIPS 2019, arXiv:1911.00937.
    """
    return _create_dcgan(
        "bcop-dcgan", input_shape, width, activation,
        lambda i, o: strided_conv(BCOPConv2d, i, o, 4, 2, bjorck_iters=bjorck_iters), bjorck_iters
    )  # fmt: skip


@register_critic("rko-dcgan")
@fill_doc
def rko_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "maxmin",
    bjorck_iters: int = 30,
) -> nn.Sequential:
    r"""The BCOP skeleton with :class:`~critics.layers.RKOConv2d` (zero padding) convolutions.

    .. math::

        f = h \circ \sigma \circ \mathcal{C}^{\mathrm{RKO}}_{K_S} \circ \mathcal{U} \circ \cdots

    Lipschitz bound: product of per-layer certificates (zero-padded FFT bound per conv, each
    :math:`\le 1` up to Björck error, usually well below 1: RKO is not gradient-norm
    preserving), L2.

    %(image_shape)s

    %(lipschitz_image_parameters)s
    %(bjorck_iters)s

    References
    ----------
    .. [1] Li et al., arXiv:1911.00937 (RKO baseline).
    """
    return _create_dcgan(
        "rko-dcgan", input_shape, width, activation,
        lambda i, o: strided_conv(RKOConv2d, i, o, 4, 2, bjorck_iters=bjorck_iters), bjorck_iters
    )  # fmt: skip


@register_critic("ossn-dcgan")
@fill_doc
def ossn_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "maxmin",
) -> nn.Sequential:
    r"""The BCOP skeleton with :class:`~critics.layers.OSSNConv2d` convolutions (not 1-Lipschitz).

    .. math::

        f = h \circ \sigma \circ \mathcal{C}_{V_S / \hat\sigma_S} \circ \mathcal{U} \circ \cdots

    Lipschitz bound: product of per-layer certificates, L2; each OSSN conv's certificate is
    typically between 1 and 2 (kernel 2), so the product is > 1 and grows with training: the
    estimate must be divided by it (which :mod:`wdist` does).

    %(image_shape)s

    %(lipschitz_image_parameters)s

    References
    ----------
    .. [1] Miyato et al., "Spectral normalization for GANs", ICLR 2018; Li et al.,
       arXiv:1911.00937 (OSSN baseline).
    """
    return _create_dcgan(
        "ossn-dcgan", input_shape, width, activation,
        lambda i, o: strided_conv(OSSNConv2d, i, o, 4, 2),
    )  # fmt: skip


@register_critic("gp-dcgan", loss="wgan-gp")
@fill_doc
def gp_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "leakyrelu",
) -> nn.Sequential:
    r"""The same skeleton, unconstrained, for WGAN-GP: ``nn.Conv2d(k=4, s=2, p=1)`` + LeakyReLU(0.2).

    .. math::

        f = w^\top \operatorname{vec}(\sigma(W_S * \cdots \sigma(W_1 * x + b_1) \cdots)) + c

    Lipschitz bound: product of per-layer certificates (zero-padded FFT bound per conv, SVD
    for the head), L2: valid but far from tight, and far above 1; a GP critic's raw estimate
    is not a W1 bound until divided by it.

    %(image_shape)s

    Parameters
    ----------
    %(input_shape)s
    %(width)s
    %(gp_activation)s

    References
    ----------
    %(gulrajani)s
    .. [2] Radford, Metz & Chintala, "DCGAN", ICLR 2016.
    """
    return _create_dcgan(
        "gp-dcgan", input_shape, width, activation,
        lambda i, o: nn.Conv2d(i, o, 4, stride=2, padding=1),
        head=lambda f: nn.Linear(f, 1), allowed=("leakyrelu", "relu"),
    )  # fmt: skip


@register_critic("aoc-dcgan")
@fill_doc
def aoc_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "maxmin",
    bjorck_iters: int = 30,
) -> nn.Sequential:
    r"""The BCOP skeleton with native stride-2 :class:`~critics.layers.AOCConv2d` convolutions.

    .. math::

        f = h \circ \sigma \circ \mathcal{C}^{(2)}_{K_S} \circ \cdots \circ \sigma \circ \mathcal{C}^{(2)}_{K_1}

    with :math:`\mathcal{C}^{(2)}_{K_i}` a kernel-4, stride-2, circular AOC convolution (an
    explicit 4 x 4 kernel: BCOP 3 x 3 composed with a 2 x 2 stride-2 RKO; orthogonal or
    semi-orthogonal), :math:`\sigma` MaxMin and :math:`h` a :class:`~critics.layers.BjorckLinear`.
    Unlike :func:`bcop_dcgan` no pixel unshuffle precedes the convolutions: the stride is the
    convolution's own. Stages and padding as in the module docstring.

    Lipschitz bound: product of per-layer certificates (exact polyphase-FFT norm per strided
    conv, SVD for the head), :math:`1 + O(10^{-5})` in float32; L2 on the flattened image.

    %(image_shape)s

    %(lipschitz_image_parameters)s
    %(bjorck_iters)s

    References
    ----------
    .. [1] Boissin et al., "An adaptive orthogonal convolution scheme for efficient and flexible
       CNN architectures", arXiv:2501.07930 (2025).
    """
    return _create_dcgan(
        "aoc-dcgan", input_shape, width, activation,
        lambda i, o: AOCConv2d(i, o, 4, stride=2, bjorck_iters=bjorck_iters), bjorck_iters
    )  # fmt: skip


@register_critic("cayley-dcgan")
@fill_doc
def cayley_dcgan(
    input_shape: tuple[int, ...],
    width: float | None = None,
    activation: str = "maxmin",
    kernel_size: int = 2,
) -> nn.Sequential:
    r"""The BCOP skeleton with :class:`~critics.layers.CayleyConv2d` (circular, FFT) convolutions.

    .. math::

        f = h \circ \sigma \circ \mathcal{C}^{\mathrm{Cayley}}_{S} \circ \mathcal{U} \circ \cdots
            \circ \sigma \circ \mathcal{C}^{\mathrm{Cayley}}_{1} \circ \mathcal{U}

    with :math:`\mathcal{U}` the 2x2 pixel unshuffle and each Cayley convolution orthogonal on
    the circular grid of its stage (semi-orthogonal when the channels change), :math:`\sigma`
    MaxMin, :math:`h` a :class:`~critics.layers.BjorckLinear`. Each layer is told its grid, so
    :func:`critics.export` works before any forward.

    Lipschitz bound: product of per-layer certificates (float64 SVD of every per-frequency
    matrix used, per Cayley layer; SVD for the head), :math:`1 + O(10^{-6})` in float32; L2.

    %(image_shape)s

    %(lipschitz_image_parameters)s
    kernel_size : int
        Of the free kernel on the unshuffled grid (2: the receptive field of a 4 x 4 stride-2
        convolution).

    References
    ----------
    .. [1] Trockman & Kolter, "Orthogonalizing convolutional layers with the Cayley transform",
       ICLR 2021, arXiv:2104.07167.
    """
    name = "cayley-dcgan"
    model = _create_dcgan(
        name, input_shape, width, activation,
        lambda i, o: strided_conv(CayleyConv2d, i, o, 2 * kernel_size, 2),
    )  # fmt: skip
    for (h, w, _), stage in zip(stage_plan(name, input_shape), (m for k, m in model.named_children() if "stage" in k)):
        for layer in stage.modules():
            if isinstance(layer, CayleyConv2d):
                layer.set_input_size(((h + 1) // 2, (w + 1) // 2))
    return model
