"""Dense layer with a (semi-)orthogonal weight, kept orthonormal by Björck iteration."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from critics.norms import dense_lipschitz_bound
from critics.ortho import UNSET, BjorckOptions, OrthoConfig, Tol, resolve
from critics.parametrizations import BjorckOrthonormal
from critics.rules import register_certificate_rule

__all__ = ["BjorckLinear"]


class BjorckLinear(BjorckOptions, nn.Linear):
    r"""Linear layer whose weight is the Björck orthonormalisation of a free parameter.

    .. math::

        y = W x + b, \qquad W = \operatorname{Bj\ddot{o}rck}(V) \approx
        V (V^\top V)^{-1/2}

    so :math:`W^\top W = I` (``out_features >= in_features``: orthonormal columns, an isometry)
    or :math:`W W^\top = I` (``out_features < in_features``: orthonormal rows, a co-isometry,
    whose transpose preserves gradient norms). ``V`` is initialised orthogonal, so the iteration
    starts at its fixed point; the parametrisation is
    :class:`critics.parametrizations.BjorckOrthonormal` (cached in eval mode).

    Lipschitz bound: :math:`\sigma_{\max}(W)` in L2, computed exactly (float64 SVD) from the
    weight actually used; :math:`1 + O(\text{tol})` with the defaults
    (:math:`\|W^\top W - I\|_2 < 10^{-5}` in float32 for well-conditioned ``V``, e.g. after
    training steps from the orthogonal initialisation); tight (it is the operator norm); no
    conditions on the input shape (applied to the last dimension).

    Shape
    -----
    (*, in_features) -> (*, out_features)

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last dimension of input and output.
    bias : bool
        Learnable bias (does not affect the Lipschitz constant).
    bjorck_iters : int or None
        Maximum Björck iterations per forward in training mode (``None``: from ``ortho``, 30 by
        default).
    bjorck_tol : float or None
        Early-stop tolerance on :math:`\max_{ij}|W^\top W - I|_{ij}` (default: from ``ortho``,
        1e-6). ``None`` runs all ``bjorck_iters`` iterations.
    ortho : OrthoConfig or None
        Keyword only. The orthogonaliser's configuration (``None``: ``default_ortho``,
        :attr:`OrthoConfig.DEFAULT <critics.ortho.OrthoConfig.DEFAULT>`); ``bjorck_iters`` and
        ``bjorck_tol`` override its fields.
    device, dtype
        As for ``nn.Linear``.

    References
    ----------
    .. [1] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    .. [2] Björck & Bowie, SIAM J. Numer. Anal. 8 (1971).
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.DEFAULT

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bjorck_iters: int | None = None,
        bjorck_tol: Tol = UNSET,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        config = resolve(type(self).__name__, ortho, self.default_ortho, bjorck_iters, bjorck_tol)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._ortho = config
        parametrize.register_parametrization(self, "weight", BjorckOrthonormal(config))

    @property
    def ortho(self) -> OrthoConfig:
        """The orthogonaliser's configuration; assigning one (None: ``default_ortho``) reconfigures the
        parametrisation, whose eval-mode cache is keyed on it."""
        return self._ortho

    @ortho.setter
    def ortho(self, value: OrthoConfig) -> None:
        self._ortho = resolve(type(self).__name__, value, self.default_ortho)
        if parametrize.is_parametrized(self, "weight"):
            for p in self.parametrizations.weight:
                if isinstance(p, BjorckOrthonormal):
                    p.ortho = self._ortho

    def reset_parameters(self) -> None:
        """Orthogonal raw weight (works before and after the parametrisation is registered)."""
        raw = self.parametrizations.weight.original if parametrize.is_parametrized(self, "weight") else self.weight
        nn.init.orthogonal_(raw)
        if self.bias is not None:
            bound = 1.0 / self.in_features**0.5 if self.in_features > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bjorck_iters={self.bjorck_iters}, bjorck_tol={self.bjorck_tol}"

    def export(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the weight this layer uses (orthonormalised) and its bias,
        in this layer's mode; the same function (bit for bit: the weight is copied)."""
        with torch.no_grad():
            weight = self.weight.detach()
            plain = nn.Linear(
                self.in_features,
                self.out_features,
                bias=self.bias is not None,
                device=weight.device,
                dtype=weight.dtype,
            )
            plain.weight.copy_(weight)
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain.train(self.training)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Exact float64 :math:`\\sigma_{\\max}` of the weight actually used (eval-mode weight)."""
        if not input_shape or int(input_shape[-1]) != self.in_features:
            raise ValueError(
                f"BjorckLinear expects inputs (*, {self.in_features}); got input_shape {tuple(input_shape)}"
            )
        return dense_lipschitz_bound(self.weight)


register_certificate_rule(BjorckLinear, BjorckLinear.lipschitz_bound, user_asserted=False)
