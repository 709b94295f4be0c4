r"""Maps T of samples whose W1 cost is known exactly: each with its coupling cost and its critic.

A transport :math:`T` moves every sample; W1 between P and :math:`T_\# P` is exact because two
certificates meet: the coupling :math:`X \mapsto T(X)` costs :math:`\mathbb E\|X - T(X)\|`
(an upper bound on W1), and a 1-Lipschitz critic :math:`f` attains
:math:`\mathbb E_P f - \mathbb E_Q f = \mathbb E\|X - T(X)\|` (a lower bound, by
Kantorovich–Rubinstein). Every transport exposes both (:meth:`Transport.cost`,
:meth:`Transport.critic`, per item), and the tests check that they agree with each other and with
POT's exact OT. The pairs built on them are in :mod:`wdist.problems.pairs`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal, Optional

import torch
from torch import Tensor

from wdist.sources.base import SourceError

__all__ = ["Transport", "TranslationMap", "DilationMap", "TowardAnchors", "translation_pattern", "Pattern"]

#: Directions of a translation (:func:`translation_pattern`).
Pattern = Literal["constant", "smooth", "checkerboard", "signs"]


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1)


class Transport(ABC):
    """A map T of samples with an explicit coupling cost and an explicit 1-Lipschitz critic.

    Subclasses state, in their docstring, why ``critic`` is 1-Lipschitz and why
    ``mean(critic(X)) - mean(critic(T(X))) == mean(cost(X))`` for every sample ``X``.
    All methods take ``(n, *shape)`` tensors of any floating dtype and compute in that dtype.
    """

    #: Short name of the construction (``translation``, ``dilation``, ``anchors``).
    name: str

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """T(x), same shape and dtype."""

    @abstractmethod
    def critic(self, x: Tensor) -> Tensor:
        """The optimal 1-Lipschitz critic f at each sample, shape ``(n,)``."""

    def cost(self, x: Tensor) -> Tensor:
        """``||x - T(x)||_2`` per sample, shape ``(n,)``: the coupling's cost of each item."""
        return _flat(x - self(x)).norm(dim=1)

    def closed_form(self) -> Optional[float]:
        """W1 when it does not depend on P (a translation's ``||v||``), else ``None``."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """One line naming T and its parameters."""


def translation_pattern(pattern: str, shape: tuple[int, ...], norm: float, seed: int) -> Tensor:
    r"""The translation vector ``v`` of a pattern, float64, shape ``shape``, with ``||v||_2 = norm``.

    * ``constant``: every entry equal (a brightness shift);
    * ``smooth``: :math:`\cos(\pi a (i + 1/2) / H + \phi) \cos(\pi b (j + 1/2) / W + \psi)` with
      seeded :math:`a, b \in \{1, 2\}` and phases (one or two half-cycles across the image), the same
      on every channel;
    * ``checkerboard``: :math:`(-1)^{i + j}`, the highest spatial frequency;
    * ``signs``: seeded independent :math:`\pm 1` entries (white, every frequency).

    ``smooth`` and ``checkerboard`` need images ``(C, H, W)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if pattern == "constant":
        v = torch.ones(shape, dtype=torch.float64)
    elif pattern == "signs":
        v = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
    elif pattern in ("smooth", "checkerboard"):
        if len(shape) != 3:
            raise SourceError(f"translation pattern {pattern!r} needs images of shape (C, H, W); got {tuple(shape)}")
        c, h, w = shape
        i = torch.arange(h, dtype=torch.float64)[:, None]
        j = torch.arange(w, dtype=torch.float64)[None, :]
        if pattern == "checkerboard":
            plane = 1.0 - 2.0 * ((i + j) % 2)
        else:
            a, b = (int(k) for k in torch.randint(1, 3, (2,), generator=gen))
            phi, psi = (float(p) for p in torch.rand(2, generator=gen, dtype=torch.float64) * 2 * math.pi)
            plane = torch.cos(math.pi * a * (i + 0.5) / h + phi) * torch.cos(math.pi * b * (j + 0.5) / w + psi)
        v = plane.expand(c, h, w).clone()
    else:
        raise SourceError(
            f"unknown translation pattern={pattern!r}; choose one of constant, smooth, checkerboard, signs"
        )
    return v * (norm / v.norm())


class TranslationMap(Transport):
    r"""T(x) = x + v.

    .. math:: W_1(P, P + v) = \|v\|_2

    Critic :math:`f(x) = -\langle x, v\rangle / \|v\|` is linear with gradient of norm 1, so
    1-Lipschitz, and :math:`\mathbb E_P f - \mathbb E_Q f = \langle v, v\rangle / \|v\| = \|v\|`
    for every P. Coupling :math:`x \mapsto x + v` moves every item by exactly :math:`\|v\|`.
    """

    name = "translation"

    def __init__(self, v: Tensor, pattern: str = "given") -> None:
        if not torch.isfinite(v).all():
            raise SourceError(f"translation vector must be finite; got norm {float(v.norm())}")
        self.v = v.to(torch.float64)
        self.pattern = pattern

    def __call__(self, x: Tensor) -> Tensor:
        return x + self.v.to(x.dtype)

    def critic(self, x: Tensor) -> Tensor:
        length = self.v.norm()  # v = 0 (P = Q): the critic 0 attains W1 = 0
        u = (self.v / length if length > 0 else self.v).to(x.dtype).reshape(-1)
        return -(_flat(x) @ u)

    def closed_form(self) -> float:
        return float(self.v.norm())

    def describe(self) -> str:
        lo, hi = float(self.v.min()), float(self.v.max())
        return f"translation ({self.pattern}, ||v|| = {float(self.v.norm()):.4g}, entries in [{lo:.3g}, {hi:.3g}])"


class DilationMap(Transport):
    r"""T(x) = c + lambda (x - c), a dilation about the point ``c`` by ``factor`` lambda > 0.

    .. math:: W_1(P, T_\# P) = |\lambda - 1|\, \mathbb E \|X - c\|_2

    Coupling :math:`x \mapsto T(x)` moves x by :math:`|\lambda - 1| \|x - c\|`. Critic
    :math:`f(x) = \operatorname{sign}(1 - \lambda) \|x - c\|` is 1-Lipschitz (a norm, by the
    triangle inequality), and :math:`\|T(x) - c\| = \lambda \|x - c\|`, so
    :math:`\mathbb E_P f - \mathbb E_Q f = |1 - \lambda|\, \mathbb E\|X - c\|`: the two agree.
    """

    name = "dilation"

    def __init__(self, center: Tensor, factor: float) -> None:
        if not (math.isfinite(factor) and factor > 0 and factor != 1):
            raise SourceError(f"dilation factor must be positive and not 1 (W1 would be 0); got factor={factor!r}")
        self.center = center.to(torch.float64)
        self.factor = float(factor)

    def __call__(self, x: Tensor) -> Tensor:
        c = self.center.to(x.dtype)
        return c + self.factor * (x - c)

    def critic(self, x: Tensor) -> Tensor:
        sign = 1.0 if self.factor < 1 else -1.0
        return sign * _flat(x - self.center.to(x.dtype)).norm(dim=1)

    def cost(self, x: Tensor) -> Tensor:
        return abs(1.0 - self.factor) * _flat(x - self.center.to(x.dtype)).norm(dim=1)

    def describe(self) -> str:
        return f"dilation by {self.factor:g} about c (||c|| = {float(self.center.norm()):.4g})"


class TowardAnchors(Transport):
    r"""T(x) = x + s (a(x) - x): each sample moves the fraction ``s`` of the way to its nearest anchor.

    With anchors :math:`a_1, \dots, a_k` and :math:`g(x) = \min_j \|x - a_j\|`:

    .. math:: W_1(P, T_\# P) = s\, \mathbb E\, g(X)

    Critic :math:`g` is 1-Lipschitz (a minimum of 1-Lipschitz functions) with
    :math:`\|\nabla g\| = 1` almost everywhere: T moves x along a gradient line of g. Let
    :math:`a_j` be the anchor nearest x (lowest index on ties). Its Voronoi cell
    :math:`V_j = \{y : \|y - a_j\| \le \|y - a_i\|\ \forall i\}` is an intersection of half-spaces,
    so convex; it holds x and :math:`a_j`, hence the segment between them and T(x). So
    :math:`g(T(x)) = \|T(x) - a_j\| = (1 - s) g(x)` and
    :math:`\mathbb E_P g - \mathbb E_Q g = s\, \mathbb E g(X)`, which is the cost
    :math:`\mathbb E\|x - T(x)\| = s\, \mathbb E g(X)` of the coupling. The optimal critic is a
    minimum of cones: neither linear nor radial.
    """

    name = "anchors"

    def __init__(self, anchors: Tensor, fraction: float) -> None:
        if not (math.isfinite(fraction) and 0 < fraction <= 1):
            raise SourceError(f"anchors fraction must be in (0, 1]; got fraction={fraction!r}")
        if anchors.ndim < 2 or anchors.shape[0] < 1:
            raise SourceError(
                f"need at least one anchor of the sample shape; got anchors of shape {tuple(anchors.shape)}"
            )
        self.anchors = anchors.to(torch.float64)
        self.fraction = float(fraction)

    def _nearest(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Index of the nearest anchor and the distance to it, per sample (in chunks of 4096)."""
        a = _flat(self.anchors).to(x.dtype)
        idx, dist = [], []
        for part in _flat(x).split(4096):
            d = torch.cdist(part, a, compute_mode="donot_use_mm_for_euclid_dist")
            m = d.min(dim=1)
            idx.append(m.indices)
            dist.append(m.values)
        return torch.cat(idx), torch.cat(dist)

    def __call__(self, x: Tensor) -> Tensor:
        idx, _ = self._nearest(x)
        target = self.anchors.to(x.dtype)[idx]
        return x + self.fraction * (target - x)

    def critic(self, x: Tensor) -> Tensor:
        return self._nearest(x)[1]

    def cost(self, x: Tensor) -> Tensor:
        return self.fraction * self._nearest(x)[1]

    def describe(self) -> str:
        k = self.anchors.shape[0]
        return f"anchors (each item moved {self.fraction:g} of the way to the nearest of {k} anchor items)"
