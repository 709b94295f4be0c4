r"""One configuration for every orthogonaliser and norm scaling of the layers: :class:`OrthoConfig`.

A layer that orthonormalises (Björck iteration), scales by a Gram-iteration bound or runs power
iteration takes ``ortho: OrthoConfig | None``; ``None`` means the layer's own preset (its
``default_ortho``), which reproduces what it has always computed. The layers' keyword options
``bjorck_iters`` and ``bjorck_tol`` (used by the registry and the configs) override the two
fields of the same names (:func:`resolve`).

Presets (class attributes, also in :data:`PRESETS` by name; tolerances measured on matrices a few
optimiser steps from orthogonal, sizes 16 to 512):

``OrthoConfig.DEFAULT``
    Björck up to 30 iterations, stopped once :math:`\max_{ij} |W^\top W - I|_{ij} < 10^{-6}`,
    checked at most every 4 iterations, step 0.5, initial scaling by a 3-squaring Gram bound:
    :math:`\|W^\top W - I\|_2 < 10^{-5}` in float32, :math:`< 10^{-6}` in float64; one power
    iteration per training step. Used by :class:`~critics.layers.BjorckLinear` and
    :class:`~critics.layers.OSSNConv2d` (which only uses ``power_iters``).
``OrthoConfig.CONV``
    ``DEFAULT`` with 5 Gram squarings (a tighter initial scale: fewer iterations on the square
    matrices of a convolution); same tolerance. :class:`~critics.layers.BCOPConv2d`,
    :class:`~critics.layers.RKOConv2d`.
``OrthoConfig.SOC``
    ``DEFAULT`` with 6 Gram squarings; :class:`~critics.layers.SOCConv2d` only uses
    ``gram_iters``, for the bounds :math:`b(L) \ge \|\mathcal{C}_L\|_2` that scale its
    skew-symmetric kernel (the reshaped-kernel bound, and with ``input_size`` the per-frequency or
    explicit-matrix one on that grid; a bound for any number of squarings, more is tighter).
``OrthoConfig.TEST``
    Stricter, for tests and references: all 60 Björck iterations run (no tolerance, no host
    synchronisation: the fixed point in the working precision, :math:`\|W^\top W - I\|_2 < 2 \cdot
    10^{-6}` in float32 and :math:`< 10^{-13}` in float64), 6 Gram squarings, 3 power iterations
    per training step. Ten times the Björck cost of ``DEFAULT``, which usually stops after 3-7
    iterations: not meant for training.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Union

from critics._checks import check_int

__all__ = ["OrthoConfig", "PRESETS", "UNSET", "Tol", "BjorckOptions", "resolve"]


class _Unset(enum.Enum):
    """Marker of a keyword option not given (``None`` is a value: ``bjorck_tol=None`` runs every
    iteration)."""

    UNSET = "from ortho"

    def __repr__(self) -> str:
        return "<from ortho>"


#: Default of the layers' ``bjorck_tol`` keyword: take the tolerance from the layer's ``ortho``.
UNSET = _Unset.UNSET
Unset = Literal[_Unset.UNSET]
Tol = Union[float, None, Unset]


@dataclass(frozen=True)
class OrthoConfig:
    r"""Settings of the orthogonalisers (Björck iteration) and norm scalings of the layers.

    Björck iteration (:func:`critics.functional.bjorck_orthonormalize`):

    .. math::

        W_0 = V / \bar\sigma_g(V), \qquad W_{k+1} = (1 + \beta) W_k - \beta W_k W_k^\top W_k

    with :math:`\bar\sigma_g \ge \sigma_{\max}` the Gram-iteration bound after :math:`g` squarings
    (:func:`critics.norms.spectral_norm_upper_bound`); it converges to the (semi-)orthogonal polar
    factor of :math:`V`. Frozen and hashable: a layer's cache key includes it, so assigning a new
    configuration to a layer rebuilds its weight.

    Parameters
    ----------
    bjorck_iters : int
        Maximum number of Björck iterations per build (>= 1).
    bjorck_tol : float or None
        Stop once :math:`\max_{ij} |W^\top W - I|_{ij} <` ``bjorck_tol`` (dimensionless, > 0);
        ``None`` runs all ``bjorck_iters`` iterations (no host synchronisation).
    bjorck_beta : float
        Step :math:`\beta`, in (0, 1); 0.5 is the classical iteration (quadratic convergence).
    check_every : int
        At most this many iterations between two convergence tests (each synchronises the
        device; >= 1).
    gram_iters : int
        Gram squarings :math:`g` of the norm bounds (>= 0; 0 is the Frobenius norm).
    power_iters : int
        Power iterations per training step of a power-iteration normaliser (OSSN; >= 1).

    Raises
    ------
    ValueError
        For a value out of range, naming the field and the value.
    """

    DEFAULT: ClassVar[OrthoConfig]
    CONV: ClassVar[OrthoConfig]
    SOC: ClassVar[OrthoConfig]
    TEST: ClassVar[OrthoConfig]

    bjorck_iters: int = 30
    bjorck_tol: float | None = 1e-6
    bjorck_beta: float = 0.5
    check_every: int = 4
    gram_iters: int = 3
    power_iters: int = 1

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_int(owner, "bjorck_iters", self.bjorck_iters)
        check_int(owner, "check_every", self.check_every)
        check_int(owner, "gram_iters", self.gram_iters, minimum=0)
        check_int(owner, "power_iters", self.power_iters)
        tol = self.bjorck_tol
        if tol is not None and (
            isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0
        ):
            raise ValueError(f"{owner}: bjorck_tol must be None or a finite float > 0; got {tol!r}")
        beta = self.bjorck_beta
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 < beta < 1.0:
            raise ValueError(f"{owner}: bjorck_beta must be a float in (0, 1) for Björck to converge; got {beta!r}")
        if tol is not None:
            object.__setattr__(self, "bjorck_tol", float(tol))
        object.__setattr__(self, "bjorck_beta", float(beta))

    def replace(self, **changes: object) -> "OrthoConfig":
        """A copy with ``changes`` applied (validated), as ``dataclasses.replace``."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def bjorck_options(self) -> dict[str, object]:
        """Keyword arguments of :func:`critics.functional.bjorck_orthonormalize` for this configuration."""
        return {
            "iters": self.bjorck_iters,
            "tol": self.bjorck_tol,
            "check_every": self.check_every,
            "beta": self.bjorck_beta,
            "gram_iters": self.gram_iters,
        }


OrthoConfig.DEFAULT = OrthoConfig()
OrthoConfig.CONV = OrthoConfig(gram_iters=5)
OrthoConfig.SOC = OrthoConfig(gram_iters=6)
OrthoConfig.TEST = OrthoConfig(bjorck_iters=60, bjorck_tol=None, gram_iters=6, power_iters=3)

#: The presets by name (see the module docstring for what each guarantees).
PRESETS: dict[str, OrthoConfig] = {
    "default": OrthoConfig.DEFAULT,
    "conv": OrthoConfig.CONV,
    "soc": OrthoConfig.SOC,
    "test": OrthoConfig.TEST,
}


def resolve(
    owner: str,
    ortho: OrthoConfig | None,
    default: OrthoConfig,
    bjorck_iters: int | None = None,
    bjorck_tol: Tol = UNSET,
) -> OrthoConfig:
    """The configuration a layer uses: ``ortho`` (``default`` if None), with the keyword options
    ``bjorck_iters`` (unless None) and ``bjorck_tol`` (unless :data:`UNSET`) applied over it.

    Errors name ``owner`` and the value (``ValueError``; ``TypeError`` for an ``ortho`` that is
    not an :class:`OrthoConfig`).
    """
    base = default if ortho is None else ortho
    if not isinstance(base, OrthoConfig):
        raise TypeError(f"{owner}: ortho must be an OrthoConfig or None; got {ortho!r}")
    changes: dict[str, object] = {}
    if bjorck_iters is not None:
        changes["bjorck_iters"] = check_int(owner, "bjorck_iters", bjorck_iters)
    if bjorck_tol is not UNSET:
        changes["bjorck_tol"] = bjorck_tol
    if not changes:
        return base
    try:
        return base.replace(**changes)
    except ValueError as exc:
        raise ValueError(f"{owner}: {exc}") from None


class BjorckOptions:
    """Mixin of the layers that orthonormalise by Björck iteration: ``bjorck_iters`` and
    ``bjorck_tol`` read and write the fields of ``self.ortho`` (assigning one replaces the
    frozen configuration, so the layer's cache, keyed on it, rebuilds the weight)."""

    ortho: OrthoConfig

    @property
    def bjorck_iters(self) -> int:
        """Maximum Björck iterations (``self.ortho.bjorck_iters``)."""
        return self.ortho.bjorck_iters

    @bjorck_iters.setter
    def bjorck_iters(self, value: int) -> None:
        self.ortho = resolve(type(self).__name__, self.ortho, self.ortho, bjorck_iters=value)

    @property
    def bjorck_tol(self) -> float | None:
        """Björck convergence tolerance (``self.ortho.bjorck_tol``; None: every iteration runs)."""
        return self.ortho.bjorck_tol

    @bjorck_tol.setter
    def bjorck_tol(self, value: float | None) -> None:
        self.ortho = resolve(type(self).__name__, self.ortho, self.ortho, bjorck_tol=value)
