r"""Critics shaped like W1 potentials: a certified trunk and a :class:`~critics.layers.PotentialHead`.

Each is a flat chain ``trunk -> Flatten -> PotentialHead`` (so :func:`critics.certify` multiplies
the trunk's certificate by the head's, :math:`\sum_m w_m` = 1 up to rounding), a
:class:`ConeCritic`: the training system calls its :meth:`~ConeCritic.init_from_samples` once,
before the first step, with training items of both sides, and builds the optimiser from its
:meth:`~ConeCritic.param_groups`.

========================  ======================================  =========================
name                      trunk g (the head's features z = g(x))   inputs
========================  ======================================  =========================
``cones``                 the identity (the flattened input)       any shape: vectors [D]
                                                                   and images
``bjorck-cones``          Björck dense layers + MaxMin             any shape (flattened)
``bcop-cones``            ``bcop-dcgan`` without its last layer    images (C, H, W)
``cayley-cones``          ``cayley-dcgan`` without its last layer  images (C, H, W)
========================  ======================================  =========================
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from critics._checks import check_int
from critics._registry import register_critic
from critics.architectures.dcgan import bcop_dcgan, cayley_dcgan
from critics.layers.activations import checked_activation
from critics.layers.bjorck import BjorckLinear
from critics.layers.cones import PARTS, PotentialHead

__all__ = ["ConeCritic", "cones", "bjorck_cones", "bcop_cones", "cayley_cones"]

#: Learning-rate multipliers of the head's parameters relative to ``train.lr`` when none are given.
DEFAULT_LR_SCALES = {"centres": 1.0, "offsets": 1.0, "logits": 1.0}

#: The one configuration of every cone critic (its defaults), chosen on the digits default and small
#: known-W1 pairs before the measured cells: 256 cones per cone part, all five parts, centres by
#: k-means on training items, centres at 10 and mixture logits at 20 times ``train.lr``. Measured
#: alternatives (README "Which critic?"): 64 or 1024 cones, centres on samples instead of k-means,
#: centres at 1x, logits at 1x (the mixture then stays spread over its parts).
CENTRES, CENTRE_LR, OFFSET_LR, WEIGHT_LR = 256, 10.0, 1.0, 20.0

#: The default placement: each cone part placed twice, by k-means on a sample of the training items
#: and on all of them, the mixture choosing (:class:`~critics.layers.PotentialHead`); on sets of at
#: most 4096 training items per side (the digits pairs, the offline default job) the same function
#: as ``kmeans``.
INIT = "kmeans-both"

#: Items passed through the trunk at once when the head is placed (a trunk's activations of every
#: item handed over would not fit in memory at once).
_FEATURE_CHUNK = 1024


class ConeCritic(nn.Sequential):
    r"""``trunk -> Flatten -> PotentialHead``: :math:`f(x) = h(g(x))`, a plain chain.

    Lipschitz bound: :math:`\mathrm{Lip}(g) \cdot \mathrm{Lip}(h)`, the product of the per-layer
    certificates (:func:`critics.certify`).

    Parameters
    ----------
    layers : OrderedDict of modules
        The trunk's layers, ending with ``flatten`` and ``head`` (a :class:`PotentialHead`).
    lr_scales : dict
        Learning-rate multipliers of the head's ``centres``, ``offsets`` and mixture ``logits``.
    """

    def __init__(self, layers: "OrderedDict[str, nn.Module]", lr_scales: dict[str, float]) -> None:
        super().__init__(layers)
        if not isinstance(self.head, PotentialHead):
            raise TypeError("ConeCritic must end with a PotentialHead named 'head'")
        self.lr_scales = {**DEFAULT_LR_SCALES, **lr_scales}

    @property
    def init_all_items(self) -> bool:
        """Whether :meth:`init_from_samples` wants every training item of a finite side."""
        return bool(self.head.init_all_items)

    def features(self, x: Tensor) -> Tensor:
        """:math:`z = g(x)`, flattened: what the head sees."""
        for name, module in self.named_children():
            if name == "head":
                break
            x = module(x)
        return x.flatten(1)

    @torch.no_grad()
    def init_from_samples(self, p: Tensor, q: Tensor) -> bool:
        """Place the head from training items of P and Q (samples, not held-out items), once.

        Returns ``False`` without changing anything when the head was placed before (a resumed
        or warm-started critic: ``head.initialised`` travels with the weights).
        """
        if bool(self.head.initialised):
            return False
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            zp = torch.cat([self.features(x) for x in p.split(_FEATURE_CHUNK)])
            zq = torch.cat([self.features(x) for x in q.split(_FEATURE_CHUNK)])
            self.head.init_from_samples(zp, zq)
        finally:
            for m, mode in modes:
                m.train(mode)
        return True

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups: the head's centres, offsets and mixture logits at their
        :attr:`lr_scales` times ``lr``, everything else at ``lr``."""
        kinds = {"centres": [], "offsets": [], "logits": [], "other": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            leaf = name.rsplit(".", 1)[-1]
            kinds[leaf if name.startswith("head.") and leaf in self.lr_scales else "other"].append(p)
        groups = [{"params": kinds["other"], "lr": lr}] if kinds["other"] else []
        groups += [{"params": ps, "lr": lr * self.lr_scales[k]} for k, ps in kinds.items() if k != "other" and ps]
        return groups


def _cone_critic(
    name: str,
    trunk: "OrderedDict[str, nn.Module]",
    features: int,
    centres: int,
    parts: tuple[str, ...] | list[str],
    init: str,
    centre_lr: float,
    offset_lr: float,
    weight_lr: float,
) -> ConeCritic:
    check_int(name, "centres", centres)
    for key, value in (("centre_lr", centre_lr), ("offset_lr", offset_lr), ("weight_lr", weight_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: {key} must be a positive multiplier of train.lr; got {value!r}")
    try:
        head = PotentialHead(features, centres, tuple(parts), init)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    layers = OrderedDict(trunk)
    layers["flatten"] = nn.Flatten()
    layers["head"] = head
    return ConeCritic(layers, {"centres": centre_lr, "offsets": offset_lr, "logits": weight_lr})


_PARTS_DOC = """
    centres : int
        Cones per cone part (upward and downward).
    parts : list of str
        Parts of the head: any of ``linear``, ``up``, ``down``, ``radial-up``, ``radial-down``
        (default all five; :data:`critics.layers.cones.PARTS`).
    init : {"kmeans-both", "kmeans", "samples", "kmeans-all"}
        Placement of the centres by :meth:`ConeCritic.init_from_samples`: ``kmeans``, k-means on
        the features of a sample of 4096 training items (upward cones on Q's, downward cones on
        P's; at most 20 Lloyd iterations), or that many training items themselves (``samples``);
        ``kmeans-all`` asks for every training item of a finite side (up to 2^25 numbers) and
        runs up to 100 iterations: on the 128-D, 256-funnel pair it places cells that a sample
        does not (0.814 of W1 against 0.694), on the 16-funnel pair it gave less (0.948 against
        0.973). ``kmeans-both`` (the default) keeps each cone part twice, placed both ways, and
        lets the mixture weights choose (README "How tight is it?").
    centre_lr, offset_lr, weight_lr : float
        Multipliers of ``train.lr`` for the centres, the offsets and the mixture logits.
"""


@register_critic("cones", inputs="any")
def cones(
    input_shape: tuple[int, ...],
    centres: int = CENTRES,
    parts: tuple[str, ...] = PARTS,
    init: str = INIT,
    centre_lr: float = CENTRE_LR,
    offset_lr: float = OFFSET_LR,
    weight_lr: float = WEIGHT_LR,
) -> ConeCritic:
    r"""Cones on the flattened input: vectors ``[D]`` and images alike.

    .. math::

        f(x) = w_1 \langle u, x\rangle + w_2 \min_j (\|x - c_j\| + b_j)
               - w_3 \min_j (\|x - d_j\| + e_j) + w_4 \|x - r\| - w_5 \|x - s\|,
        \qquad \|u\| = 1,\ w = \operatorname{softmax}(\theta)

    Placed by :meth:`ConeCritic.init_from_samples`: u along the difference of the sides' means,
    the upward cones :math:`c_j` by k-means on Q's training items, the downward :math:`d_j` on P's,
    r at Q's mean and s at P's (a dilation's optimal critic is a single cone).

    Lipschitz bound: :math:`\sum_m w_m \cdot 1`, the weights used, rounded up (L2 on the
    flattened input): :math:`1 + O(10^{-7})`; no trunk.

    Shape
    -----
    (N, *input_shape) -> (N, 1)

    Parameters
    ----------
    input_shape : tuple of int
        Any shape; flattened.
    """
    features = math.prod(int(s) for s in input_shape)
    return _cone_critic("cones", OrderedDict(), features, centres, parts, init, centre_lr, offset_lr, weight_lr)


@register_critic("bjorck-cones", inputs="any")
def bjorck_cones(
    input_shape: tuple[int, ...],
    width: int = 256,
    depth: int = 2,
    activation: str = "maxmin",
    centres: int = CENTRES,
    parts: tuple[str, ...] = PARTS,
    init: str = INIT,
    centre_lr: float = CENTRE_LR,
    offset_lr: float = OFFSET_LR,
    weight_lr: float = WEIGHT_LR,
) -> ConeCritic:
    r"""Cones on the features of a Björck MLP (``bjorck-mlp`` without its last layer): vectors ``[D]``.

    .. math::

        g(x) = \sigma(W_L \cdots \sigma(W_1 \operatorname{vec}(x) + a_1) \cdots + a_L), \qquad
        f = h \circ g

    with orthonormalised :math:`W_i` (:class:`~critics.layers.BjorckLinear`), :math:`\sigma`
    MaxMin and :math:`h` the :class:`~critics.layers.PotentialHead` of :func:`cones`.

    Lipschitz bound: the product of the float64 SVD norms of the weights used times the head's
    :math:`\sum_m w_m`, rounded up (L2): :math:`1 + O(10^{-6})`.

    Shape
    -----
    (N, *input_shape) -> (N, 1)

    Parameters
    ----------
    input_shape : tuple of int
        Any shape; flattened (meant for vectors).
    width, depth : int
        Hidden width and number of hidden layers of the trunk (``depth = 0``: :func:`cones`).
    activation : str
        ``"maxmin"``, ``"groupsortN"`` or ``"relu"``.
    """
    name = "bjorck-cones"
    width, depth = check_int(name, "width", width), check_int(name, "depth", depth, minimum=0)
    act = checked_activation(name, activation, ("groupsort", "relu"), [width])
    trunk: OrderedDict[str, nn.Module] = OrderedDict(flatten_input=nn.Flatten())
    features = math.prod(int(s) for s in input_shape)
    for i in range(depth):
        trunk[f"linear{i + 1}"] = BjorckLinear(features, width)
        trunk[f"act{i + 1}"] = act()
        features = width
    return _cone_critic(name, trunk, features, centres, parts, init, centre_lr, offset_lr, weight_lr)


def _image_trunk(critic: nn.Sequential) -> tuple["OrderedDict[str, nn.Module]", int]:
    """The stages of a DCGAN-shaped critic (every layer before its ``flatten`` and ``head``) and
    the number of features they output."""
    trunk = OrderedDict((k, m) for k, m in critic.named_children() if k not in ("flatten", "head"))
    return trunk, int(critic.head.in_features)


@register_critic("bcop-cones", inputs="images")
def bcop_cones(
    input_shape: tuple[int, ...],
    width: float | None = None,
    centres: int = CENTRES,
    parts: tuple[str, ...] = PARTS,
    init: str = INIT,
    centre_lr: float = CENTRE_LR,
    offset_lr: float = OFFSET_LR,
    weight_lr: float = WEIGHT_LR,
) -> ConeCritic:
    r"""Cones on the features of the BCOP critic's stages (``bcop-dcgan`` without its head): images.

    .. math:: f = h \circ \sigma \circ \mathcal{C}_{K_S} \circ \mathcal{U} \circ \cdots \circ
        \sigma \circ \mathcal{C}_{K_1} \circ \mathcal{U}

    (see :func:`~critics.architectures.dcgan.bcop_dcgan`) with :math:`h` the
    :class:`~critics.layers.PotentialHead` of :func:`cones`; its linear part alone is
    ``bcop-dcgan``.

    Lipschitz bound: the product of the per-layer certificates (exact FFT norms of the BCOP
    convolutions) times the head's :math:`\sum_m w_m`, L2: :math:`1 + O(10^{-5})`.

    Shape
    -----
    (N, C, H, W) -> (N, 1)

    Parameters
    ----------
    input_shape : (C, H, W)
    width : float or None
        Width multiplier of the stages (see :func:`~critics.architectures.dcgan.bcop_dcgan`).
    """
    trunk, features = _image_trunk(bcop_dcgan(input_shape, width))
    return _cone_critic("bcop-cones", trunk, features, centres, parts, init, centre_lr, offset_lr, weight_lr)


@register_critic("cayley-cones", inputs="images")
def cayley_cones(
    input_shape: tuple[int, ...],
    width: float | None = None,
    centres: int = CENTRES,
    parts: tuple[str, ...] = PARTS,
    init: str = INIT,
    centre_lr: float = CENTRE_LR,
    offset_lr: float = OFFSET_LR,
    weight_lr: float = WEIGHT_LR,
) -> ConeCritic:
    r"""Cones on the features of the Cayley critic's stages (``cayley-dcgan`` without its head): images.

    .. math:: f = h \circ \sigma \circ \mathcal{C}^{\mathrm{Cayley}}_{S} \circ \mathcal{U} \circ
        \cdots \circ \sigma \circ \mathcal{C}^{\mathrm{Cayley}}_{1} \circ \mathcal{U}

    (see :func:`~critics.architectures.dcgan.cayley_dcgan`) with :math:`h` the
    :class:`~critics.layers.PotentialHead` of :func:`cones`.

    Lipschitz bound: the product of the per-layer certificates (float64 SVD of every
    per-frequency matrix of each Cayley convolution) times the head's :math:`\sum_m w_m`, L2.

    Shape
    -----
    (N, C, H, W) -> (N, 1)

    Parameters
    ----------
    input_shape : (C, H, W)
    width : float or None
        Width multiplier of the stages.
    """
    trunk, features = _image_trunk(cayley_dcgan(input_shape, width))
    return _cone_critic("cayley-cones", trunk, features, centres, parts, init, centre_lr, offset_lr, weight_lr)


for _entrypoint in (cones, bjorck_cones, bcop_cones, cayley_cones):
    _entrypoint.__doc__ = (_entrypoint.__doc__ or "").rstrip() + "\n" + _PARTS_DOC
