"""LipConvnet-style critic of skew-orthogonal convolutions (Singla & Feizi 2021)."""

from __future__ import annotations

from torch import nn

from critics._docstrings import fill_doc
from critics._registry import register_critic
from critics.architectures._stages import lipconvnet_critic
from critics.layers.soc import SOCConv2d
from critics.norms import conv_grid_norm_plan
from critics.ortho import OrthoConfig

__all__ = ["soc_lipconvnet"]


@register_critic("soc-lipconvnet")
@fill_doc
def soc_lipconvnet(
    input_shape: tuple[int, ...],
    width: float | None = None,
    depth: int = 1,
    activation: str = "maxmin",
    kernel_size: int = 3,
    train_terms: int = 6,
    eval_terms: int = 12,
    grid_cost: float = 3.0,
) -> nn.Sequential:
    r"""SOC critic: per stage, invertible downsampling + channel-changing SOC, then ``depth`` SOCs.

    .. math::

        \text{stage}_i = (\sigma \circ \mathrm{SOC}_{c_i \to c_i})^{\text{depth}} \circ
            \sigma \circ \mathrm{SOC}_{4 c_{i-1} \to c_i} \circ \mathcal{U}, \qquad
        f = h \circ \text{stage}_S \circ \cdots \circ \text{stage}_1

    with :math:`\mathcal{U}` the 2x2 pixel unshuffle (the stride-2 SOC of LipConvnet),
    :math:`c_i` = 64-128-256-512 times ``width``, :math:`\sigma` MaxMin and :math:`h` a
    :class:`~critics.layers.BjorckLinear` to one output. An SOC whose bound on its stage's
    grid (:func:`~critics.norms.conv_grid_norm_plan`) costs at most ``grid_cost`` times its
    training series on a batch of 64 (in floating-point operations) is told that grid
    (``input_size``), so its kernel is scaled by the per-frequency or explicit-matrix bound there
    and reaches its intended norm; the others keep the input-size-independent reshaped bound
    (see :class:`~critics.layers.SOCConv2d`). Stage count and padding as in
    :mod:`critics.architectures.dcgan`: 4 stages for 32/48/64-pixel inputs (ending at 2, 3, 4
    pixels), 3 for 8 x 8 (ending at 1 x 1), odd sides zero-padded to even before their stage;
    nothing is upsampled.

    Lipschitz bound: product of per-layer certificates, L2: each SOC contributes
    :math:`1 + \sum_{i \ge \text{terms}} s^i / i!` for the current mode's number of terms
    (eval: ``eval_terms``, :math:`1 + O(10^{-11})`; training: ``train_terms``,
    :math:`\approx 1 + 2\cdot 10^{-4}` each), the head its float64 SVD norm.

    %(image_shape)s

    Parameters
    ----------
    %(input_shape)s
    %(width)s
    depth : int
        Channel-preserving SOC layers per stage after the downsampling one (>= 0).
    %(sorting_activation)s
    kernel_size : int
        Odd SOC kernel size.
    train_terms, eval_terms : int
        Taylor terms of each SOC in training and eval mode.
    grid_cost : float
        Largest cost of the grid bound, relative to the layer's training series, for which an SOC
        is scaled on its grid (>= 0; 0: none, ``float("inf")``: all). With the default 3 at width
        0.25: every stage of 8 x 8 inputs, all but the 2 x 2 one of 32 x 32 inputs. On the digits
        (``configs/compare/digits-all.yaml``, 2 seeds, 300 steps) the bound went from 0.300 (0) to
        0.452 (every stage), for 1.8x the training time on the CPU.

    References
    ----------
    .. [1] Singla & Feizi, "Skew orthogonal convolutions", ICML 2021, arXiv:2105.11417.
    """
    name = "soc-lipconvnet"
    if isinstance(grid_cost, bool) or not isinstance(grid_cost, (int, float)) or not grid_cost >= 0.0:
        raise ValueError(f"{name}: grid_cost must be a number >= 0; got {grid_cost!r}")

    def soc(i: int, o: int, grid: tuple[int, int]) -> SOCConv2d:
        c, k = max(i, o), kernel_size
        _, bound_flops = conv_grid_norm_plan((c, c, k, k), grid, "zeros", OrthoConfig.SOC.gram_iters)
        series_flops = 2 * 64 * grid[0] * grid[1] * c * c * k * k * max(train_terms - 1, 1)
        size = grid if bound_flops <= grid_cost * series_flops else None
        return SOCConv2d(i, o, k, train_terms=train_terms, eval_terms=eval_terms, input_size=size)

    return lipconvnet_critic(
        name, input_shape, width, depth, activation, soc, lambda c, grid: soc(c, c, grid), activated=True
    )
