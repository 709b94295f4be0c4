r"""Minima of cones, :math:`\min_j (\|z - c_j\| + b_j)`, evaluated so that the error is bounded.

The matmul form of squared distances, :math:`\|z\|^2 - 2 z \cdot c + \|c\|^2`, is fast but loses
about :math:`\sqrt{\varepsilon}\,(\|z\| + \|c\|)` to cancellation when z is near c (about 0.01-0.02
for 3 x 32 x 32 images in float32): the function computed would then not be the 1-Lipschitz one
that is certified. :func:`min_of_cones` uses that form only to *select*: in float64, with a
rigorous bound on its error, it finds every centre that can attain the minimum, and evaluates the
distances to those candidates directly, :math:`\sqrt{\sum_i (z_i - c_i)^2}` in float64, where all
terms are positive and nothing cancels.

Error of the exact path (``exact=True``). Let :math:`u = 2^{-53}` and
:math:`\gamma_n = n u / (1 - n u)`. A float64 dot product of length D, in any summation order,
is within :math:`\gamma_D \sum_i |z_i c_i| \le \gamma_D \|z\| \|c\|` of the exact one (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5), so the matmul form of
:math:`s = \|z - c\|^2` is within :math:`e = \gamma_{D+2} (\|z\| + \|c\|)^2`, and since
:math:`|\sqrt{a^+} - \sqrt{b^+}| \le \sqrt{|a - b|}` each computed cone value
:math:`\sqrt{\tilde s^+} + b_j` is within :math:`\sqrt e` of the exact one: every centre whose
computed value is within :math:`2 \sqrt e` of the lowest is a candidate (a doubled :math:`e` and a
relative slack cover the rounding of the values themselves). On the candidates the direct form has only positive terms:
:math:`|\tilde d - d| \le \gamma_{D+2}\, d`, and so

.. math::

    |\tilde f(z) - f(z)| \le \gamma_{D+3} \max_{j \in C(z)} (\|z - c_j\| + |b_j|),

about :math:`3.4 \cdot 10^{-13}` relative at D = 3072, before the result is rounded to the
input's dtype (float32: :math:`2^{-24}` relative, the rounding every critic's output carries;
see :mod:`wdist.precision`). The training path (``exact=False``) selects the nearest cone with
the matmul form in the input's dtype and evaluates that one cone directly: its value is never
below the exact minimum and its gradient is the exact gradient of the selected cone.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["min_of_cones", "cone_error_bound", "CANDIDATES", "UNIT_ROUNDOFF"]

#: Unit roundoff of float64.
UNIT_ROUNDOFF = 2.0**-53

#: Candidate centres per point evaluated directly (more are taken for the rare point whose
#: candidate set is larger).
CANDIDATES = 8

#: Elements of float64 differences held at once by the direct form (about 32 MiB).
_CHUNK_ELEMENTS = 1 << 22


def _gamma(n: int) -> float:
    nu = n * UNIT_ROUNDOFF
    return nu / (1.0 - nu)


def cone_error_bound(features: int, largest: float) -> float:
    r"""Bound on :math:`|\tilde f - f|` of the exact path: :math:`\gamma_{D+3}` times ``largest``,
    the largest :math:`\|z - c_j\| + |b_j|` over the candidates (units of z)."""
    return _gamma(int(features) + 3) * float(largest)


def min_of_cones(z: Tensor, centres: Tensor, offsets: Tensor, exact: bool = True) -> tuple[Tensor, Tensor]:
    r"""Value and index of the lowest cone at each point.

    .. math:: f(z) = \min_j (\|z - c_j\|_2 + b_j), \qquad j^*(z) = \operatorname{arg\,min}_j

    Parameters
    ----------
    z : (N, D) tensor
        Points (features of the critic's trunk, or the flattened input).
    centres : (k, D) tensor
        Apexes :math:`c_j` of the cones.
    offsets : (k,) tensor
        Heights :math:`b_j` of the apexes.
    exact : bool
        ``True``: candidates selected in float64 with the bound of the module docstring, the
        value computed directly on them (error stated there); ``False``: the training path
        (nearest cone by the matmul form in z's dtype, then its distance directly).

    Returns
    -------
    values : (N,) tensor, z's dtype
        :math:`f(z)`, differentiable in z, the centres and the offsets (the gradient of the
        lowest cone).
    index : (N,) long tensor
        :math:`j^*(z)`.
    """
    if z.ndim != 2 or centres.ndim != 2 or z.shape[1] != centres.shape[1] or offsets.shape != centres.shape[:1]:
        raise ValueError(
            f"min_of_cones needs z (N, D), centres (k, D) and offsets (k,); got {tuple(z.shape)}, "
            f"{tuple(centres.shape)}, {tuple(offsets.shape)}"
        )
    if not exact:
        with torch.no_grad():
            sq = (z * z).sum(1, keepdim=True) - 2.0 * (z @ centres.mT) + (centres * centres).sum(1)
            index = (sq.clamp_min(0).sqrt() + offsets).argmin(dim=1)
        values = (z - centres[index]).norm(dim=1) + offsets[index]
        return values, index
    candidates, complete = _candidates(z, centres, offsets)
    z64, c64, b64 = z.to(torch.float64), centres.to(torch.float64), offsets.to(torch.float64)
    values = torch.empty(z.shape[0], dtype=torch.float64, device=z.device)
    index = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    everything = torch.arange(centres.shape[0], device=z.device)
    for rows, cand in ((complete.nonzero()[:, 0], candidates), ((~complete).nonzero()[:, 0], None)):
        if rows.numel() == 0:
            continue
        width = centres.shape[0] if cand is None else cand.shape[1]
        step = max(1, _CHUNK_ELEMENTS // max(1, width * z.shape[1]))
        for start in range(0, rows.numel(), step):
            part = rows[start : start + step]
            ids = everything.expand(part.numel(), -1) if cand is None else cand[part]
            cone = (z64[part, None, :] - c64[ids]).square().sum(-1).sqrt() + b64[ids]
            best = cone.min(dim=1)
            values = values.index_put((part,), best.values)
            index[part] = ids.gather(1, best.indices[:, None])[:, 0]
    return values.to(z.dtype), index


def _candidates(z: Tensor, centres: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(N, m)`` indices of the :data:`CANDIDATES` lowest cones by the matmul form at each point, and
    whether they hold every centre that can attain the minimum there (else that point takes all).

    With :math:`e_i = 2 \gamma_{D+2} (\|z_i\| + \max_j \|c_j\|)^2` bounding the error of every
    squared distance of row i (doubled to cover its own rounding) and
    :math:`|\sqrt{a^+} - \sqrt{b^+}| \le \sqrt{|a - b|}`, each computed cone value is within
    :math:`\delta_i = \sqrt{e_i}` (plus a few roundings of the values themselves) of the exact one,
    so every centre that can attain the minimum has a computed value within :math:`2 \delta_i`
    of the lowest computed one.
    """
    k, features = centres.shape
    m = min(k, CANDIDATES)
    with torch.no_grad():
        z64, c64, b64 = z.detach().double(), centres.detach().double(), offsets.detach().double()
        zn2, cn2 = z64.square().sum(1), c64.square().sum(1)
        approx = (z64 @ c64.mT).mul_(-2.0).add_(zn2[:, None]).add_(cn2[None, :])
        top = approx.max(dim=1).values.clamp_min(0)
        err = 2.0 * _gamma(features + 2) * (zn2.sqrt() + float(cn2.max().sqrt())).square()
        approx.clamp_min_(0).sqrt_().add_(b64)
        # the rounding of the computed values themselves (a few operations on values of this size)
        delta = err.sqrt() + 16.0 * UNIT_ROUNDOFF * ((top + err).sqrt() + float(b64.abs().max()))
        if m == k:
            return torch.arange(k, device=z.device).expand(z.shape[0], k), torch.ones_like(delta, dtype=torch.bool)
        low, idx = approx.topk(m + 1, dim=1, largest=False)
        return idx[:, :m], low[:, m] > low[:, 0] + 2.0 * delta + 1e-300
