r"""Heads shaped like W1 potentials: minima of cones, and their certified convex mixture with a linear head.

Between two discrete measures every optimal W1 potential is a minimum of cones,
:math:`\varphi(z) = \min_i (\psi_i + \|z - y_i\|)`. Each cone is 1-Lipschitz (a norm, by the
triangle inequality), and a minimum of 1-Lipschitz functions is 1-Lipschitz, so these heads are
certified from their structure: :math:`\mathrm{Lip}(h \circ g) \le \mathrm{Lip}(g)` for any
feature map g. Distances are L2 on the flattened features.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from critics._checks import check_int
from critics.distances import min_of_cones
from critics.norms import round_up
from critics.rules import register_certificate_rule

__all__ = ["ConeHead", "LinearUnitHead", "PotentialHead", "PARTS", "INITS", "kmeans_centres"]

#: The parts a :class:`PotentialHead` may combine: a unit-norm linear function, a minimum of
#: upward cones (small near its centres: set near Q) and the negation of one (large near its
#: centres: set near P), and the radial critics: a single upward cone (placed at Q's mean) and a
#: single downward one (at P's mean).
PARTS = ("linear", "up", "down", "radial-up", "radial-down")

Orientation = Literal["up", "down"]

#: Lloyd iterations of the k-means placements at most: ``kmeans`` and ``kmeans-all``. Small sets
#: converge long before (the digits' 1297 training items in 6-11); on 190,000 items of the 128-D,
#: 256-funnel pair 100 iterations (not yet converged) place cells that 20 do not (README "How
#: tight is it?").
KMEANS_ITERATIONS = {"kmeans": 20, "kmeans-all": 100}

#: The placements of :meth:`PotentialHead.init_from_samples`.
INITS = ("kmeans", "samples", "kmeans-all", "kmeans-both")

#: Items of a side that the sample placement (``kmeans``) uses: the first this many of those handed
#: over (the caller hands a random permutation of the training items, so they are a random sample).
SAMPLE_ITEMS = 4096

#: Logit of a twin part that is switched off: its softmax weight underflows to exactly 0 in float32,
#: so it adds exactly 0, receives no gradient and adds nothing to the certificate.
_OFF = -1.0e4


def kmeans_centres(samples: Tensor, k: int, method: str = "kmeans", seed: int = 0) -> Tensor:
    r"""``k`` centres from ``samples`` (n, D): Lloyd's k-means (scikit-learn, k-means++ start, one
    run, at most :data:`KMEANS_ITERATIONS` iterations of ``method`` ("kmeans" or "kmeans-all"),
    threads as torch's) or ``k`` of the samples themselves (``method="samples"``, a seeded choice).
    With fewer than ``k`` distinct samples the samples are repeated (duplicate cones change
    nothing). Float32 on the samples' device."""
    n = samples.shape[0]
    if n == 0:
        raise ValueError("kmeans_centres needs at least one sample")
    x = samples.detach().to(torch.float32).flatten(1)
    gen = torch.Generator().manual_seed(int(seed))
    if n <= k or method == "samples":
        order = torch.randperm(n, generator=gen)
        return x[order[torch.arange(k) % n].to(x.device)].clone()
    if method not in KMEANS_ITERATIONS:
        raise ValueError(f"centre initialisation must be one of {INITS}; got {method!r}")
    # start-up cost: scikit-learn is imported only when a critic is initialised from data
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, torch.get_num_threads())):
        iterations = KMEANS_ITERATIONS[method]
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=iterations, random_state=int(seed))
        km.fit(x.cpu().numpy())
    return torch.from_numpy(km.cluster_centers_).to(device=x.device, dtype=torch.float32)


class ConeHead(nn.Module):
    r"""A minimum of cones over features z, or its negation.

    .. math::

        h(z) = s \min_{j = 1}^{k} \big(\|z - c_j\|_2 + b_j\big), \qquad s = +1 \ (\text{up}),
        \ -1 \ (\text{down})

    Lipschitz bound: 1 in L2, exactly, from the structure (each cone is 1-Lipschitz and a
    minimum or a negation keeps that); tight, since :math:`\|\nabla h\| = 1` almost everywhere.
    Evaluated in eval mode by :func:`critics.distances.min_of_cones` with ``exact=True`` (error
    :math:`\le \gamma_{D+3}` relative, stated there), in training mode by its fast path.

    Shape
    -----
    (N, features) -> (N,)

    Parameters
    ----------
    features : int
        D, the length of z.
    centres : int
        k, the number of cones.
    orientation : {"up", "down"}
        ``up``: :math:`s = +1`, small near the centres (they belong near Q, where a critic
        maximising :math:`E_P f - E_Q f` is low); ``down``: :math:`s = -1` (centres near P).

    Attributes
    ----------
    centres : (k, D) parameter; offsets : (k,) parameter
    """

    def __init__(self, features: int, centres: int = 256, orientation: Orientation = "up") -> None:
        super().__init__()
        self.features = check_int("ConeHead", "features", features)
        k = check_int("ConeHead", "centres", centres)
        if orientation not in ("up", "down"):
            raise ValueError(f"ConeHead: orientation must be 'up' or 'down'; got {orientation!r}")
        self.orientation = orientation
        self.sign = 1.0 if orientation == "up" else -1.0
        self.centres = nn.Parameter(torch.rand(k, self.features) * 2 - 1)
        self.offsets = nn.Parameter(torch.zeros(k))

    def forward(self, z: Tensor) -> Tensor:
        values, _ = min_of_cones(z.flatten(1), self.centres, self.offsets, exact=not self.training)
        return self.sign * values

    @torch.no_grad()
    def place(self, samples: Tensor, method: str = "kmeans") -> None:
        """Centres from ``samples`` of the side the head sits near (:func:`kmeans_centres`), offsets 0."""
        self.centres.copy_(kmeans_centres(samples, self.centres.shape[0], method).to(self.centres))
        self.offsets.zero_()

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """1: a minimum of cones of unit slope (L2), checked against the input size."""
        if math.prod(int(s) for s in input_shape) != self.features:
            raise ValueError(f"ConeHead expects {self.features} features; got input_shape {tuple(input_shape)}")
        return 1.0

    def extra_repr(self) -> str:
        return f"features={self.features}, centres={self.centres.shape[0]}, orientation={self.orientation!r}"


class LinearUnitHead(nn.Module):
    r"""A linear function with a unit-norm gradient: :math:`h(z) = \langle u / \|u\|, z\rangle + a`.

    Lipschitz bound: :math:`\|u / \|u\|\|_2` of the normalised vector actually used, float64,
    rounded up (:func:`critics.norms.round_up`): 1 up to float32 rounding.

    Shape
    -----
    (N, features) -> (N,)
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = check_int("LinearUnitHead", "features", features)
        self.direction = nn.Parameter(torch.randn(self.features) / math.sqrt(self.features))
        self.bias = nn.Parameter(torch.zeros(()))

    def unit(self) -> Tensor:
        """The normalised direction the head uses."""
        return self.direction / self.direction.norm().clamp_min(1e-30)

    def forward(self, z: Tensor) -> Tensor:
        return z.flatten(1) @ self.unit() + self.bias

    @torch.no_grad()
    def place(self, toward: Tensor) -> None:
        """Point the direction along ``toward`` (e.g. the difference of the two sides' means)."""
        if float(toward.norm()) > 0:
            self.direction.copy_(toward.flatten().to(self.direction))

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Float64 norm of the normalised direction actually used, rounded up."""
        if math.prod(int(s) for s in input_shape) != self.features:
            raise ValueError(f"LinearUnitHead expects {self.features} features; got {tuple(input_shape)}")
        with torch.no_grad():
            return round_up(float(self.unit().detach().double().norm()), self.features)


class PotentialHead(nn.Module):
    r"""A learned convex combination of a linear head and the two orientations of cone heads.

    .. math::

        h(z) = \sum_{m} w_m h_m(z), \qquad w = \operatorname{softmax}(\theta), \qquad
        h_m \in \{\langle u/\|u\|, z\rangle + a,\ \min_j (\|z - c_j\| + b_j),\ -\min_j (\|z - d_j\| + e_j),\
        \|z - r\| + \beta,\ -\|z - s\| - \gamma\}

    (the parts of :data:`PARTS`: linear, up, down, radial-up, radial-down).

    The training objective is linear in the weights,
    :math:`E_P h - E_Q h = \sum_m w_m (E_P h_m - E_Q h_m)`, so each part is trained toward its own
    optimum (Adam's steps do not shrink with its weight) while the weights move toward the best
    part: the head is never much worse than its best part alone.

    Lipschitz bound: :math:`\sum_m w_m \mathrm{Lip}(h_m)` (triangle inequality) with the weights
    actually used, float64, rounded up: :math:`1 + O(10^{-7})` since each part is 1-Lipschitz; tight
    when one weight is 1 (where the mixture ends on the measured cases).

    Shape
    -----
    (N, features) -> (N, 1)

    Parameters
    ----------
    features : int
        Length of the flattened input z.
    centres : int
        Cones per cone part.
    parts : tuple of str
        Which of :data:`PARTS` to combine (each once).
    init : {"kmeans", "samples", "kmeans-all", "kmeans-both"}
        How :meth:`init_from_samples` places the centres (:data:`INITS`; ``kmeans-all`` and
        ``kmeans-both`` also set :attr:`init_all_items`). ``kmeans-both`` keeps each cone part
        twice: ``up`` / ``down`` placed by k-means on the first :data:`SAMPLE_ITEMS` items handed
        over (as ``kmeans``) and a twin ``up-all`` / ``down-all`` placed on all of them (as
        ``kmeans-all``); the mixture weights then move to whichever suits the pair. A twin whose
        side hands over no more than :data:`SAMPLE_ITEMS` items would repeat its part: it is
        switched off (weight exactly 0), so such pairs get the same function as ``kmeans``.

    Attributes
    ----------
    initialised : bool buffer
        Set by :meth:`init_from_samples`; saved with the weights, so a resumed or warm-started
        critic is not placed again.
    init_all_items : bool
        Whether the placement asks for every training item of a finite side (``kmeans-all``,
        ``kmeans-both``) rather than a sample of them; read by the caller that hands the items over.
    """

    def __init__(
        self,
        features: int,
        centres: int = 256,
        parts: tuple[str, ...] = PARTS,
        init: str = "kmeans",
    ) -> None:
        super().__init__()
        parts = tuple(parts)
        bad = [p for p in parts if p not in PARTS]
        if not parts or bad or len(set(parts)) != len(parts):
            raise ValueError(f"PotentialHead: parts must be distinct names from {PARTS}; got {parts!r}")
        if init not in INITS:
            raise ValueError(f"PotentialHead: init must be one of {INITS}; got {init!r}")
        self.features = check_int("PotentialHead", "features", features)
        self.init = init
        self.init_all_items = init in ("kmeans-all", "kmeans-both")
        self.heads = nn.ModuleDict({p: _part(p, self.features, centres) for p in parts})
        if init == "kmeans-both":
            twins = tuple(f"{p}-all" for p in parts if p in ("up", "down"))
            with torch.random.fork_rng(devices=[]):  # the other parts start as with ``kmeans``
                self.heads.update({t: ConeHead(self.features, centres, t[: -len("-all")]) for t in twins})
            parts = parts + twins
        self.parts = parts
        self.logits = nn.Parameter(torch.zeros(len(parts)))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def weights(self) -> Tensor:
        """The mixture weights w (softmax of the logits), in the order of ``parts``."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, z: Tensor) -> Tensor:
        z = z.flatten(1)
        w = self.weights().to(z.dtype)
        # a part whose weight has underflowed to exactly 0 adds exactly 0 (and no gradient): skipped
        used = [(w[i], self.heads[p]) for i, p in enumerate(self.parts) if bool(w[i] != 0)]
        out = sum(weight * head(z) for weight, head in used)
        if len(used) < len(self.parts) and self.training and torch.is_grad_enabled():
            # DistributedDataParallel requires every parameter to take part in the loss: the
            # skipped parts enter as an exact 0 (their parameters are finite), with zero gradients
            skipped = [self.heads[p] for i, p in enumerate(self.parts) if not bool(w[i] != 0)]
            out = out + 0.0 * sum(q.sum() for head in skipped for q in head.parameters())
        return out[:, None]  # type: ignore[index]

    @torch.no_grad()
    def init_from_samples(self, zp: Tensor, zq: Tensor) -> None:
        """Place the parts from features of training items of P (``zp``) and Q (``zq``): the
        linear direction along mean(zp) - mean(zq), upward cones on Q, downward cones on P (with
        ``kmeans-both``: ``up`` / ``down`` on the first :data:`SAMPLE_ITEMS` items, the twins on
        all, a twin switched off where that is no more)."""
        zp, zq = zp.flatten(1), zq.flatten(1)
        self.logits.zero_()
        for i, p in enumerate(self.parts):
            head = self.heads[p]
            if p == "linear":
                head.place(zp.double().mean(0) - zq.double().mean(0))
            elif p.startswith("radial"):
                head.place((zq if p == "radial-up" else zp).double().mean(0, keepdim=True), "samples")
            elif self.init != "kmeans-both":
                head.place(zq if p == "up" else zp, self.init)
            else:
                side = zq if p.startswith("up") else zp
                if not p.endswith("-all"):
                    head.place(side[:SAMPLE_ITEMS], "kmeans")
                elif side.shape[0] > SAMPLE_ITEMS:
                    head.place(side, "kmeans-all")
                else:
                    self.logits[i] = _OFF
        self.initialised.fill_(True)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Weights saved without twins (``init: kmeans``, the default before ``kmeans-both``) load
        into a head with twins as that same function: each twin a copy of its part, switched off."""
        twins = [p for p in self.parts if p.endswith("-all")]
        logits = state_dict.get(prefix + "logits")
        saved_without = all(f"{prefix}heads.{t}.centres" not in state_dict for t in twins)
        if twins and saved_without and logits is not None and logits.numel() == len(self.parts) - len(twins):
            state_dict[prefix + "logits"] = torch.cat([logits, logits.new_full((len(twins),), _OFF)])
            for t in twins:
                for leaf in ("centres", "offsets"):
                    state_dict[f"{prefix}heads.{t}.{leaf}"] = state_dict[f"{prefix}heads.{t[: -len('-all')]}.{leaf}"]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """:math:`\\sum_m w_m \\mathrm{Lip}(h_m)` in float64 with the weights used, rounded up."""
        with torch.no_grad():
            w = self.weights().detach().double().cpu()
            total = sum(float(w[i]) * self.heads[p].lipschitz_bound(input_shape) for i, p in enumerate(self.parts))
        return round_up(total, 2 * len(self.parts))

    def extra_repr(self) -> str:
        return f"features={self.features}, parts={self.parts}, init={self.init!r}"


def _part(name: str, features: int, centres: int) -> nn.Module:
    """The head of one part of :data:`PARTS`."""
    if name == "linear":
        return LinearUnitHead(features)
    if name.startswith("radial"):
        return ConeHead(features, 1, "up" if name == "radial-up" else "down")
    return ConeHead(features, centres, name)


register_certificate_rule(ConeHead, ConeHead.lipschitz_bound, user_asserted=False)
register_certificate_rule(LinearUnitHead, LinearUnitHead.lipschitz_bound, user_asserted=False)
register_certificate_rule(PotentialHead, PotentialHead.lipschitz_bound, user_asserted=False)
