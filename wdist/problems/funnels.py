r"""The ray-monotone "MinFunnel" pairs of Korotin, Kolesov & Burnaev (NeurIPS 2022): exact W1 by construction.

Potential: :math:`u(x) = \min_n (\|x - c_n\| + b_n)`, 1-Lipschitz (a minimum of cones). Q is a base
distribution on the cube :math:`[-h, h]^D` (uniform for the vector pairs; any image source in
:math:`[-1, 1]` for the image pairs). Each sample y of the base is moved toward the apex of its
active funnel:

* :math:`n^* = \arg\min_n (\|y - c_n\| + b_n)`, :math:`c = c_{n^*}`, :math:`v = (y - c) / \|y - c\|`;
* the ray :math:`y + r v`, :math:`r \ge 0`, is followed while funnel :math:`n^*` stays active and
  the cube is not left: :math:`r_{\mathrm{cube}} = \min_i (h\,\mathrm{sign}(v_i) - y_i) / v_i`, and
  for every other funnel m, with :math:`a = y - c_m` and :math:`\delta = u(y) - b_m`, the first
  :math:`r` where :math:`\|a + r v\| + b_m = u(y) + r` (squared:
  :math:`r = (\|a\|^2 - \delta^2) / (2 (\delta - a \cdot v))`, kept when the denominator and r are
  positive and :math:`\delta + r > 0`); :math:`\bar y = y + r^* v` for the smallest of them;
* :math:`t = \|y - c\| / \|\bar y - c\|`, and :math:`T(y) = c + t^{\deg} (\bar y - c)`.

Why W1 is exact. :math:`g_m(r) = \|a + r v\| + b_m - (u(y) + r)` is non-increasing in r (the
norm grows at most at unit rate) and :math:`g_m(0) \ge 0`, so funnel :math:`n^*` is active on the
whole ray up to :math:`\bar y`; for every z on the segment :math:`[c, \bar y]` and every m,
:math:`\|z - c_m\| + b_m \ge u(\bar y) - \|\bar y - z\| = \|z - c\| + b_{n^*}`, so
:math:`u(z) = \|z - c\| + b_{n^*}` there. Both y and T(y) lie on that segment, T(y) closer to c
(:math:`t^{\deg} \le t`), hence :math:`u(y) - u(T(y)) = \|y - T(y)\|`. With P = law of T(Y) and
Q = law of Y: the coupling :math:`T(y) \leftrightarrow y` costs :math:`E\|T(Y) - Y\|` and the
1-Lipschitz critic :math:`f = -u` attains :math:`E_P f - E_Q f = E\|T(Y) - Y\|`, so
:math:`W_1(P, Q) = E\|T(Y) - Y\|` exactly (the optimal critic is a maximum of downward cones, large
near the apexes where P concentrates). T(y) stays in the cube: it lies between
:math:`c \in [-h, h]^D` and :math:`\bar y \in [-h, h]^D`.

The paper's parameters. Vectors: :math:`D = 2 \dots 128`, 4-256 funnels, deg 8, h = 2.5, Q uniform
on :math:`[-2.5, 2.5]^D`, centres :math:`2.5 (2 U - 1)` from ``torch.manual_seed(987)``, then the
generator reseeded and biases :math:`0.1\,\mathcal N(0, 1)`. Images: centres uniform in
:math:`[-1, 1]^D`, h = 1.2, deg 10 (1 funnel) or 100 (16 funnels), seed 295, Q a ResNet
generator's CIFAR-10 / CelebA output (here: any image source instead). Regenerated with the same
recipe on torch's CPU generator, the 16-funnel CIFAR-10 parameters equal the published file
``benchmarks/cifar/width_16/deg_100_seed_295.pt`` exactly; the published vector files
(``benchmarks/nd/dim_*/width_*/deg_8_seed_987.pt``) hold another draw of the same recipe (they
differ from every regeneration tried), so the vector pairs here are "same recipe": their exact W1
differs from the paper's "true" column by the draw. ``parameters`` loads the published file (a
state dict with ``net.centers`` and ``net.bias``) to reproduce a pair exactly.

P and Q come from **independent** base samples: with ``items`` (a finite item count) Q holds
``items`` base samples and P the images of ``items`` other ones, so two data sets split
independently never share an item through T; a data-set base is divided into two disjoint halves
the same way. Computed in float64, stored in float32 (each item within :math:`6\cdot10^{-8}
\sqrt{D} h` of its float64 value).

References
----------
.. [1] Korotin, Kolesov & Burnaev, "Kantorovich Strikes Back! Wasserstein GANs are not Optimal
   Transport?", NeurIPS 2022 Datasets and Benchmarks; parameters and metrics in the public
   repository justkolesov/Wasserstein1Benchmark (MIT).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from wdist.sources.base import SourceError

__all__ = ["MinFunnels", "recipe_parameters", "load_parameters"]

#: Points moved at once (the (points x funnels) tables of the move).
_CHUNK = 2048


class MinFunnels:
    r"""The potential :math:`u(x) = \min_n (\|x - c_n\|_2 + b_n)` and the ray-monotone move T.

    Parameters
    ----------
    centres : (n, D) tensor
        Apexes :math:`c_n` (stored in float64).
    biases : (n,) tensor
        :math:`b_n`.
    half_width : float
        h: the cube :math:`[-h, h]^D` the rays are truncated at.
    deg : float
        The exponent of :math:`t^{\deg}` (>= 1).
    """

    def __init__(self, centres: Tensor, biases: Tensor, half_width: float, deg: float) -> None:
        if centres.ndim != 2 or biases.shape != centres.shape[:1]:
            raise SourceError(
                f"funnels need centres (n, D) and biases (n,); got {tuple(centres.shape)} and {tuple(biases.shape)}"
            )
        if not (math.isfinite(deg) and deg >= 1):
            raise SourceError(f"funnel deg must be >= 1 (the move must bring points closer to the apex); got {deg!r}")
        self.centres, self.biases = centres.to(torch.float64), biases.to(torch.float64)
        self.half_width, self.deg = float(half_width), float(deg)
        if float(self.centres.abs().max()) > self.half_width:
            raise SourceError(
                f"funnel centres reach {float(self.centres.abs().max()):.4g}, outside the cube [-{self.half_width:g}, "
                f"{self.half_width:g}]^D the rays are truncated at"
            )

    def values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`u(x)` and the active funnel, float64, for ``x`` of shape (N, D) or (N, *shape)."""
        x = x.flatten(1).to(torch.float64)
        vals, idx = [], []
        for part in x.split(_CHUNK):
            cones = torch.cdist(part, self.centres, compute_mode="donot_use_mm_for_euclid_dist") + self.biases
            best = cones.min(dim=1)
            vals.append(best.values)
            idx.append(best.indices)
        return torch.cat(vals), torch.cat(idx)

    def move(self, y: Tensor) -> Tensor:
        """T(y), float64, the shape of ``y`` (every entry of y in [-h, h])."""
        flat = y.flatten(1).to(torch.float64)
        if flat.numel() and float(flat.abs().max()) > self.half_width * (1 + 1e-12):
            raise SourceError(
                f"funnel base samples reach {float(flat.abs().max()):.4g}, outside the cube [-{self.half_width:g}, "
                f"{self.half_width:g}]^D"
            )
        return torch.cat([self._move(part) for part in flat.split(_CHUNK)]).reshape(y.shape)

    def _move(self, y: Tensor) -> Tensor:
        u, active = self.values(y)
        c = self.centres[active]
        d = (y - c).norm(dim=1)
        v = (y - c) / d.clamp_min(1e-300)[:, None]
        h = self.half_width
        with torch.no_grad():
            steps = (torch.sign(v) * h - y) / v  # inf where v_i = 0
            r_cube = torch.where(v != 0, steps.abs(), torch.full_like(steps, math.inf)).min(dim=1).values
            # a_m = y - c_m: |a_m|^2 directly, a_m . v = y . v - c_m . v (float64, no (N, n, D) table)
            a2 = torch.cdist(y, self.centres, compute_mode="donot_use_mm_for_euclid_dist").square()
            av = (y * v).sum(1, keepdim=True) - v @ self.centres.mT
            delta = u[:, None] - self.biases[None]
            denom = 2.0 * (delta - av)
            r = (a2 - delta.square()) / denom
            ok = (denom > 0) & (r > 0) & (delta + r > 0)
            ok[torch.arange(len(y)), active] = False
            r_funnel = torch.where(ok, r, torch.full_like(r, math.inf)).min(dim=1).values
            reach = torch.minimum(r_cube, r_funnel)
        up = y + reach[:, None] * v
        t = d / (d + reach)
        x = c + (t**self.deg)[:, None] * (up - c)
        return torch.where((d > 0)[:, None], x, y)

    def cost(self, y: Tensor) -> Tensor:
        """:math:`\\|y - T(y)\\|` per sample, float64."""
        return (y.flatten(1).to(torch.float64) - self.move(y).flatten(1)).norm(dim=1)


def recipe_parameters(funnels: int, dim: int, centre_range: float, seed: int) -> tuple[Tensor, Tensor]:
    r"""The paper's recipe: centres :math:`a (2 U - 1)` (U uniform on [0, 1), shape (funnels, dim)) from
    a generator seeded ``seed``, then the generator reseeded and biases :math:`0.1\,\mathcal N(0, 1)`;
    float32 as in the paper, on torch's CPU generator."""
    gen = torch.Generator().manual_seed(int(seed))
    centres = centre_range * (torch.rand(funnels, dim, generator=gen).mul(2).add(-1))
    gen.manual_seed(int(seed))
    biases = torch.randn(funnels, generator=gen).mul(0.1)
    return centres, biases


def load_parameters(path: str, funnels: int, dim: int) -> tuple[Tensor, Tensor]:
    """Centres and biases from a published parameter file (a state dict holding ``net.centers`` and
    ``net.bias``), loaded with ``weights_only=True``; their shapes must be (funnels, dim), (funnels,)."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"funnel parameters file {str(p)!r} does not exist")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SourceError(f"funnel parameters file {str(p)!r} could not be read as a torch state dict: {err}") from None
    if not isinstance(state, dict) or "net.centers" not in state or "net.bias" not in state:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise SourceError(
            f"funnel parameters file {str(p)!r} must hold 'net.centers' and 'net.bias' (the benchmark's MinFunnels "
            f"state dict); it holds {keys}"
        )
    centres, biases = state["net.centers"], state["net.bias"]
    if tuple(centres.shape) != (funnels, dim) or tuple(biases.shape) != (funnels,):
        raise SourceError(
            f"funnel parameters file {str(p)!r} holds centres {tuple(centres.shape)} and biases {tuple(biases.shape)}; "
            f"this pair needs ({funnels}, {dim}) and ({funnels},): set funnels and dim to match"
        )
    return centres, biases
