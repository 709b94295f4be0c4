"""Skew-Orthogonal Convolution (SOC): a truncated exponential of a skew-symmetric convolution."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_stride_one
from critics._docstrings import fill_doc
from critics.functional import working_dtype
from critics.layers.conv_base import LipschitzConv2d
from critics.norms import (
    conv_grid_norm_bound,
    conv_matrix,
    conv_operator_norm,
    crop_to_reach,
    reshaped_kernel_norm_bound,
    round_up,
)
from critics.ortho import OrthoConfig, resolve
from critics.rules import register_certificate_rule

__all__ = ["SOCConv2d", "skew_symmetric_kernel", "exp_tail_bound"]


def skew_symmetric_kernel(w: Tensor) -> Tensor:
    r""":math:`L = W - W^*`, with :math:`W^*[i, j, p, q] = W[j, i, k-1-p, k-1-q]`.

    For odd square kernels and "same" zero (or circular) padding, the convolution with
    :math:`W^*` is the adjoint of the one with :math:`W`, so :math:`\mathcal{C}_L` is exactly
    skew-symmetric. ``w``: (C, C, k, k).
    """
    return w - w.transpose(0, 1).flip(2, 3)


def exp_tail_bound(s: float, terms: int) -> float:
    r""":math:`\sum_{i \ge \text{terms}} s^i / i!` in float64, summed term by term (no cancellation),
    rounded up (:func:`~critics.norms.round_up`, :math:`n` = the operations performed: each adds at
    most one rounding of relative size :math:`\varepsilon / 2` to a sum of positive terms).

    The sum stops when a term falls below :math:`10^{-17}` of the total; with :math:`s \le 2`
    (``max_norm`` <= 2) that happens well past :math:`i = 3`, where successive terms shrink by
    :math:`s / (i + 1) \le 1/2`, so the terms left out add up to at most twice that term:
    :math:`2 \cdot 10^{-17}` of the total, below the margin."""
    s = float(s)
    term = 1.0
    for i in range(1, terms + 1):
        term *= s / i  # s^terms / terms!
    total, i = 0.0, terms
    while term > 0.0 and term >= total * 1e-17:
        total += term
        i += 1
        term *= s / i
    return round_up(total, 2 * i)


def _check_input_size(input_size: object) -> tuple[int, int] | None:
    """``input_size`` as an ``(H, W)`` pair of positive ints (or None); a ValueError names the value."""
    if input_size is None:
        return None
    try:
        h, w = input_size  # type: ignore[misc]
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"SOCConv2d: input_size must be None or a pair (H, W) of positive ints; got {input_size!r}")
    return (int(h), int(w))


@fill_doc
class SOCConv2d(LipschitzConv2d):
    r"""Skew-orthogonal convolution (Singla & Feizi 2021) with a certified, always-valid scale.

    With :math:`C = \max(c_{in}, c_{out})`, a free kernel :math:`W \in \mathbb{R}^{C \times C
    \times k \times k}` (odd :math:`k`) gives the skew-symmetric :math:`L = W - W^*`, rescaled
    so that its certified norm is at most ``max_norm``:

    .. math::

        \tilde L = L \cdot \min\!\Big(1, \frac{s_{\max}}{b(L)}\Big), \qquad
        y = \sum_{i=0}^{K} \frac{\mathcal{C}_{\tilde L}^{\,i}\, x}{i!} + b,
        \qquad K = \text{terms} - 1

    where :math:`b(L)` is a guaranteed upper bound on :math:`\|\mathcal{C}_L\|_2`, recomputed
    (differentiably) at every step, never a power-iteration estimate:

    * ``input_size=None``: :math:`b(L) = k\,\overline{\sigma}(T_L)`, the input-size-independent
      bound of :func:`~critics.norms.reshaped_kernel_norm_bound` (:math:`T_L` the
      :math:`C \times C k^2` reshaping, :math:`\overline\sigma` its Gram-iteration upper bound).
      It is 1.8 (:math:`k = 3`) to 2.6 (:math:`k = 5`) times the true norm on trained kernels,
      so the layer's actual :math:`\|\mathcal{C}_{\tilde L}\|` sits near 0.38 (0.27) with
      ``max_norm=0.7``: smaller rotations than the design's.
    * ``input_size=(H, W)``: the smaller of that and
      :func:`~critics.norms.conv_frequency_norm_bound` on that grid, the Gram-iteration bound of
      every per-frequency matrix (Delattre et al. 2023) over the :math:`H \times W` DFT
      frequencies (circular padding: the operator norm) or the :math:`(H + k - 1) \times
      (W + k - 1)` ones (zero padding: the circular convolution it is a restriction of), within
      1% of the true norm. The scaled kernel then reaches the intended norm: 0.67 exactly for
      :math:`k = 3`, 0.56-0.61 for :math:`k = 5` (explicit Jacobian, :math:`C = 16`,
      :math:`8 \times 8`, zero padding, ``max_norm=0.7``, after 5 Adam steps;
      ``tests/test_soc_norm.py``). The bound holds on inputs of that size (and, for zero
      padding, smaller ones); on any other size the layer still computes the same function and
      its certificate below, taken on the actual grid, stays valid, only :math:`s \le s_{\max}`
      is no longer guaranteed. On 2 x 2 and smaller zero-padded grids the explicit matrix
      is bounded instead (:func:`~critics.norms.conv_grid_norm_bound`), there the operator's own
      norm. Costs :math:`g + 1` forward-only complex :math:`C^3` products per frequency per
      step (:math:`g` = ``ortho.gram_iters``; the gradient is that of the top singular value),
      against about :math:`(g + 1 + k^2) C^3` for the reshaped bound alone: on the CPU
      (``wdist bench layers``, batch 64, 3 x 3) a training step of a :math:`C = 16` layer costs
      1.3x (4 x 4) to 3x (8 x 8) the plain SOC's, :math:`C = 64` on 8 x 8 and 16 x 16 2.5-4x;
      :func:`~critics.architectures.lipconvnet.soc_lipconvnet` only asks for it where it is
      cheap (``grid_cost``).

    :math:`\mathcal{C}_{\tilde L}` is skew-symmetric, so :math:`\exp(\mathcal{C}_{\tilde L})` is
    orthogonal and only the truncation departs from it.
    ``in_channels < out_channels`` zero-pads the input channels (an isometry);
    ``in_channels > out_channels`` keeps the first ``out_channels`` output channels (a
    projection). Training mode sums ``train_terms`` terms, eval mode ``eval_terms``.

    Lipschitz bound: :math:`1 + \sum_{i > K} s^i / i!` (L2), with :math:`s` the smaller of the
    reshaped-kernel bound of :math:`\tilde L` and the float64 FFT norm of
    :math:`\mathcal{C}_{\tilde L}` on the actual input's grid (:math:`n + k - 1` for zero
    padding; both valid whatever the scaling), and :math:`K + 1` the number of terms of the current mode
    (eval: ``eval_terms``). Tight up to that tail (the exact exponential is orthogonal); with
    the defaults (:math:`s \le 0.7`, 12 eval terms) it is at most :math:`1 + 3.1 \cdot 10^{-11}`, and
    :math:`1 + 1.9 \cdot 10^{-4}` with the 6 training terms. Conditions: odd kernel size,
    stride 1, zero padding (circular also allowed; both make the convolution skew).

    %(conv_shape_and_channel_counts)s
    kernel_size : int
        Odd, >= 1 (even kernels have no centre, so :math:`W^*` is not the adjoint: an error).
    train_terms, eval_terms : int
        Terms of the Taylor series (including the identity) in training and eval mode.
    max_norm : float
        Upper bound :math:`s_{\max}` imposed on the certified norm of :math:`\mathcal{C}_{\tilde L}`
        (default 0.7, in (0, 2]).
    padding_mode : str
        ``"zeros"`` (default) or ``"circular"``.
    bias : bool
        Learnable bias.
    stride : int
        Must be 1.
    ortho : OrthoConfig or None
        Keyword only. Only ``gram_iters`` is used: the Gram squarings of the bounds in
        :math:`b(L)` (``None``: ``default_ortho``,
        :attr:`OrthoConfig.SOC <critics.ortho.OrthoConfig.SOC>`, 6 squarings).
    input_size : (H, W) or None
        Keyword only. The input grid the scale is computed for (see :math:`b(L)` above);
        ``None``: the input-size-independent reshaped-kernel bound alone.

    Notes
    -----
    On a grid no larger than the kernel (:math:`n_h n_w \le k^2`, the last stages of an image
    critic) the convolution is its operator matrix :math:`M`
    (:func:`~critics.norms.conv_matrix`), built once per kernel; where that matrix is no larger
    than the batch (:math:`C n_h n_w \le N`) the series itself is summed on it,
    :math:`E = \sum_{i < T} M^i / i!`, and applied once: :math:`T - 2` products of the small
    matrix instead of :math:`T - 1` products with the batch, and in eval mode (cached with the
    kernel) one product per forward instead of ``eval_terms - 1``. The same function up to float
    rounding (``tests/test_fast_forms.py``). In eval mode the scaled kernel is built once and
    cached until a parameter changes or ``train()`` is called. The rescaling uses no buffers, so
    a freshly built layer, a layer after large optimiser steps and a reloaded one are all
    certified alike (the failures of the published power-iteration scale; see
    ``tests/test_soc.py``).

    References
    ----------
    .. [1] Singla & Feizi, "Skew orthogonal convolutions", ICML 2021, arXiv:2105.11417.
    .. [2] Singla & Feizi, "Fantastic four: differentiable bounds on singular values of
       convolution layers", ICLR 2021, arXiv:1911.10258.
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.SOC

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        train_terms: int = 6,
        eval_terms: int = 12,
        max_norm: float = 0.7,
        padding_mode: str = "zeros",
        bias: bool = True,
        stride: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        check_stride_one("SOCConv2d", stride)
        if isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 0:
            raise ValueError(
                f"SOCConv2d needs an odd kernel_size (the skew-symmetric construction W - W* needs a "
                f"centre tap); got kernel_size={kernel_size}"
            )
        for name, value in (("train_terms", train_terms), ("eval_terms", eval_terms)):
            if int(value) < 1:
                raise ValueError(f"SOCConv2d: {name} must be >= 1; got {value!r}")
        if not 0.0 < float(max_norm) <= 2.0:
            raise ValueError(f"SOCConv2d: max_norm must be in (0, 2]; got {max_norm!r}")
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        self.train_terms = int(train_terms)
        self.eval_terms = int(eval_terms)
        self.max_norm = float(max_norm)
        self.ortho = resolve("SOCConv2d", ortho, self.default_ortho)
        self.input_size = _check_input_size(input_size)
        c = max(self.in_channels, self.out_channels)
        self.channels = c
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(c, c, self.kernel_size, self.kernel_size, **factory))
        self._operators = None
        self.reset_parameters()

    def _init_free(self) -> None:
        """Kaiming-uniform free kernel (the scale is re-derived at every step)."""
        nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))

    @property
    def terms(self) -> int:
        """Number of Taylor terms used in the current mode."""
        return self.train_terms if self.training else self.eval_terms

    def _scaled(self) -> tuple[Tensor, Tensor]:
        """(scaled skew kernel, its certified norm bound s <= max_norm)."""
        return self._scaled_from(self.kernel_param)

    def _scaled_from(self, w: Tensor) -> tuple[Tensor, Tensor]:
        work = working_dtype(w.dtype)
        skew = skew_symmetric_kernel(w.to(work))
        # For a skew kernel U(L) is a row permutation of -T(L)^T, so T alone gives the T/U bound;
        # R and S would cost k^3 C^3 per Gram step for ~20% tightness: not worth it per step.
        bound = reshaped_kernel_norm_bound(skew, gram_iters=self.ortho.gram_iters, reshapings="T")
        if self.input_size is not None:
            grid = conv_grid_norm_bound(skew, self.input_size, self.padding_mode, self.ortho.gram_iters)
            bound = torch.minimum(bound, grid)
        factor = torch.clamp(self.max_norm / bound.clamp_min(torch.finfo(work).tiny), max=1.0)
        return skew * factor, bound * factor

    def _scaled_kernel(self, w: Tensor) -> Tensor:
        return self._scaled_from(w)[0]

    def _build_kernel(self) -> Tensor:
        return self._scaled()[0]

    def _settings(self) -> tuple:
        return (self.max_norm, self.ortho, self.input_size)

    def _graph_build(self) -> tuple:
        return self._scaled_kernel, (self.kernel_param,), ("soc", *self._settings())

    def clear_cache(self) -> None:
        super().clear_cache()
        self._operators: tuple[Tensor, dict[tuple, Tensor]] | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_operators"] = None
        return state

    def _operator(self, kernel: Tensor, grid: tuple[int, int], series: bool) -> Tensor:
        r"""On a grid no larger than the kernel: the matrix :math:`M` of :math:`\mathcal{C}_{\tilde L}`
        there (:func:`~critics.norms.conv_matrix`), or with ``series`` the truncated exponential
        :math:`E = \sum_{i < \text{terms}} M^i / i!` (Horner: :math:`\text{terms} - 2` matrix
        products). Built once per kernel (the forwards of a training step share them; eval mode
        keeps them with its cached kernel)."""
        if self._operators is None or self._operators[0] is not kernel:
            self._operators = (kernel, {})
        built = self._operators[1]
        key = (grid, self.padding_mode, self.terms if series else 0)
        if key not in built:
            matrix = built.get((grid, self.padding_mode, 0))
            if matrix is None:
                matrix = built[(grid, self.padding_mode, 0)] = conv_matrix(kernel, grid, self.padding_mode)
            if series:
                eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
                total = eye if self.terms == 1 else eye + matrix / (self.terms - 1)
                for i in range(self.terms - 2, 0, -1):
                    total = torch.addmm(eye, matrix, total, alpha=1.0 / i)  # I + M E / i
                built[key] = total
        return built[key]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        kernel = self.weight
        grid = (int(x.shape[-2]), int(x.shape[-1]))
        small = self.kernel_size > 1 and grid[0] * grid[1] <= self.kernel_size**2
        if small and self.channels * grid[0] * grid[1] <= x.shape[0]:
            # a matrix no larger than the batch: the series on the matrix, applied once
            return self._series_on_matrix(x, self._operator(kernel, grid, series=True))
        if self.in_channels < self.channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.channels - self.in_channels))
        # z = sum_i C_L^i x / i!: each term is the previous one convolved with L / i (the
        # division on the small kernel, not on the activations), accumulated in place (add saves
        # nothing for backward); the bias rides on the last convolution when no channel is cut.
        terms = self.terms
        fuse_bias = self.bias is not None and self.out_channels == self.channels and terms > 1
        matrix = self._operator(kernel, grid, series=False) if small else None
        z = x
        term = x
        for i in range(1, terms):
            bias = self.bias if fuse_bias and i == terms - 1 else None
            if matrix is None:
                term = self._conv(term, kernel / i, bias)
            else:  # one operator matrix for every term (small_grid_conv would rebuild it per term)
                weight = (matrix / i).to(term.dtype)
                bias = None if bias is None else bias.to(term.dtype).repeat_interleave(grid[0] * grid[1])
                term = F.linear(term.flatten(1), weight, bias).view(term.shape)
            z = x + term if i == 1 else z.add_(term)
        if self.out_channels < self.channels:
            z = z[:, : self.out_channels]
        if self.bias is not None and not fuse_bias:
            z = z + self.bias.to(z.dtype)[:, None, None]
        return z

    def _series_on_matrix(self, x: Tensor, series: Tensor) -> Tensor:
        """``y = E x + b`` on a small grid: the input channels beyond ``in_channels`` are zero and the
        outputs beyond ``out_channels`` are cut, so only that corner of :math:`E` is used."""
        n, (h, w) = x.shape[0], x.shape[-2:]
        weight = series[: self.out_channels * h * w, : self.in_channels * h * w].to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype).repeat_interleave(h * w)
        return F.linear(x.flatten(1), weight, bias).view(n, self.out_channels, h, w)

    def export(self) -> nn.Sequential:
        r"""The eval-mode series as plain ``nn.Conv2d`` layers with fixed weights (``nn.Sequential``).

        With :math:`T` = ``eval_terms``, :math:`L_i = \tilde L / i` and :math:`E` the identity
        kernel (one centre tap per channel), the series :math:`t_i = \mathcal{C}_{L_i} t_{i-1}`,
        :math:`z_i = z_{i-1} + t_i` (:math:`t_0 = z_0 = x`, zero channels appended when
        :math:`c_{in} < C`) is carried as :math:`2C` channels :math:`(u_i, z)` with
        :math:`u_i = t_i / \beta_i`, two convolutions per term:

        .. math::

            \begin{pmatrix} u_i \\ z_{i-1} \end{pmatrix} =
            \begin{pmatrix} \tfrac{\beta_{i-1}}{\beta_i} L_i & 0 \\ 0 & E \end{pmatrix} *
            \begin{pmatrix} u_{i-1} \\ z_{i-1} \end{pmatrix}, \qquad
            \begin{pmatrix} u_i \\ z_i \end{pmatrix} =
            \begin{pmatrix} I & 0 \\ \beta_i I & I \end{pmatrix}
            \begin{pmatrix} u_i \\ z_{i-1} \end{pmatrix}

        (``k x k`` with ``padding="same"`` in the layer's padding mode, then ``1 x 1``; the first
        reads :math:`x` alone, the last keeps the :math:`c_{out}` first channels of :math:`z` and
        adds the bias): :math:`2(T - 1)` convolutions (one when :math:`T = 1`). The scales
        :math:`\beta_0 = 1`, :math:`\beta_i = 2^{\lceil \log_2(s \beta_{i-1} / i) \rceil}` (powers of two,
        :math:`s` the layer's scaling bound) follow the decay of the terms: scaling by a power of
        two is exact, the identity blocks copy exactly and the ``1 x 1`` step rounds
        :math:`z_{i-1} + t_i` once, as the layer does, so the module computes the eval-mode
        layer's function to float rounding of the convolutions. Its weights take
        :math:`(2C)^2 k^2 (T - 1)` numbers, about :math:`4(T-1)` times the layer's.

        :func:`critics.certify` certifies it as a chain of convolutions, by the product of their
        norms (2 to 3 with the scales above): a valid bound, but looser than the layer's
        :math:`1 + \sum_{i \ge T} s^i / i!`, which rests on the skew-symmetry of
        :math:`\mathcal{C}_{\tilde L}` that per-factor norms cannot see (already the first term's
        :math:`\|I + \mathcal{C}_{L_1}\| > 1`). Certify the layer, not its export.
        """
        kernel = self.eval_kernel()
        dtype = self.kernel_param.dtype
        c, cin, cout, k, terms = self.channels, self.in_channels, self.out_channels, self.kernel_size, self.eval_terms
        bias = None if self.bias is None else self.bias.detach().to(dtype)
        if terms == 1:  # y = x (channels padded or cut) + b
            copy = torch.eye(c, dtype=dtype, device=kernel.device)[:cout, :cin, None, None]
            return nn.Sequential(self._plain_conv(cin, cout, copy, bias))
        with torch.no_grad():
            s = float(self._scaled_from(self.kernel_param)[1])
        exponents = [0]  # beta_i = 2 ** exponents[i]
        for i in range(1, terms):
            step = math.ceil(math.log2(s / i)) if s > 0 else 0
            exponents.append(max(exponents[-1] + step, -100))
        centre = torch.zeros(c, c, k, k, dtype=dtype, device=kernel.device)
        centre[torch.arange(c), torch.arange(c), k // 2, k // 2] = 1.0
        zero = torch.zeros_like(centre)
        eye = torch.eye(c, dtype=dtype, device=kernel.device)[:, :, None, None]
        # the layer adds its bias inside the last term's convolution when no channel is cut
        fuse_bias = bias is not None and cout == c
        convs: list[nn.Module] = []
        for i in range(1, terms):
            beta = 2.0 ** exponents[i]
            term = (kernel / i).to(dtype) * 2.0 ** (exponents[i - 1] - exponents[i])  # L_i beta_{i-1} / beta_i
            last = i == terms - 1
            step_bias = torch.cat((bias / beta, torch.zeros_like(bias))) if last and fuse_bias else None
            if i == 1:  # (u_1, z_0) from x
                weight = torch.cat((term[:, :cin], centre[:, :cin]))
                convs.append(self._plain_conv(cin, 2 * c, weight, step_bias))
            else:
                weight = torch.cat((torch.cat((term, zero), dim=1), torch.cat((zero, centre), dim=1)))
                convs.append(self._plain_conv(2 * c, 2 * c, weight, step_bias))
            add = torch.cat((torch.cat((eye, 0 * eye), dim=1), torch.cat((beta * eye, eye), dim=1)))
            if not last:  # (u_i, z_{i-1}) -> (u_i, z_{i-1} + beta_i u_i)
                convs.append(self._plain_conv(2 * c, 2 * c, add, None))
            else:  # y = first c_out channels of z_{T-2} + t_{T-1} (+ the bias if not fused)
                convs.append(self._plain_conv(2 * c, cout, add[c:][:cout], None if fuse_bias else bias))
        return nn.Sequential(*convs)

    def operator_norm_bound(self, input_shape: tuple[int, ...]) -> float:
        r"""Certified :math:`s \ge \|\mathcal{C}_{\tilde L}\|_2` on ``input_shape`` inputs (float64)."""
        spatial = self._spatial(input_shape)
        with torch.no_grad():
            kernel = self.weight  # the kernel the forward of the current mode uses
            s_reshaped = reshaped_kernel_norm_bound(kernel, gram_iters=self.ortho.gram_iters, reshapings="T")
        # zero padding: only the taps that can meet the image change the operator (small grids)
        reach = kernel if self.padding_mode == "circular" else crop_to_reach(kernel, spatial)
        s_fft = conv_operator_norm(reach, spatial, padding_mode=self.padding_mode)  # rounded up
        # s_reshaped is a Gram iteration in the parameter dtype: rounded up by that dtype's margin
        # for a matrix of its size (each squaring's relative error is halved again by its root).
        size = kernel.shape[0] + kernel.shape[1] * kernel.shape[-2] * kernel.shape[-1]
        return min(round_up(float(s_reshaped), size, kernel.dtype), s_fft)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """:math:`1 + \\sum_{i \\ge \\text{terms}} s^i/i!` for the current mode's number of terms, rounded up."""
        tail = exp_tail_bound(self.operator_norm_bound(input_shape), self.terms)
        return 1.0 if tail == 0.0 else round_up(1.0 + tail, 1)

    def extra_repr(self) -> str:
        grid = "" if self.input_size is None else f", input_size={self.input_size}"
        return (
            super().extra_repr()
            + f", train_terms={self.train_terms}, eval_terms={self.eval_terms}, max_norm={self.max_norm}{grid}"
        )


register_certificate_rule(SOCConv2d, SOCConv2d.lipschitz_bound, user_asserted=False)
