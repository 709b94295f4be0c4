"""Plain-torch copies of critics: every wdist Lipschitz layer replaced by its export.

``export(model)`` deep-copies a model and replaces each Lipschitz layer by the output of its
``export()`` method, a module built only from ``torch.nn`` classes with fixed weights (the weights
the layer uses in eval mode). The copy computes the same function as the eval-mode original (to
float rounding), needs neither this package's layer classes nor ``torch.nn.utils.parametrize``,
and loads anywhere torch does.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn
from torch.nn.utils import parametrize

from critics.layers.bjorck import BjorckLinear
from critics.layers.conv_base import LipschitzConv2d
from critics.layers.downsample import InvertibleDownsample
from critics.parametrizations import BjorckOrthonormal, remove_bjorck

__all__ = ["export", "vanilla_export", "EXPORTABLE"]

#: The layer families replaced by their ``export()``.
EXPORTABLE: tuple[type[nn.Module], ...] = (BjorckLinear, LipschitzConv2d, InvertibleDownsample)


def export(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every wdist Lipschitz layer replaced by its plain export.

    * :class:`~critics.layers.BjorckLinear` -> ``nn.Linear``;
    * :class:`~critics.layers.BCOPConv2d`, :class:`~critics.layers.RKOConv2d`,
      :class:`~critics.layers.OSSNConv2d` -> ``nn.Conv2d`` (``padding="same"``, the layer's padding
      mode: exactly the layer's asymmetric padding of even kernels);
    * :class:`~critics.layers.SOCConv2d` -> ``nn.Sequential`` of ``nn.Conv2d`` computing the
      eval-mode truncated exponential series (see :meth:`SOCConv2d.export
      <critics.layers.SOCConv2d.export>`);
    * :class:`~critics.layers.AOCConv2d` -> ``nn.Conv2d`` (its stride; certified by its stride-1
      norm, looser), :class:`~critics.layers.AOLConv2d` -> ``nn.Conv2d``,
      :class:`~critics.layers.CayleyConv2d` -> a circular ``nn.Conv2d`` with an H x W kernel (for
      its input size only), :class:`~critics.layers.SLLConv2d` / :class:`~critics.layers.CPLConv2d`
      -> :class:`~critics.layers.Residual` of plain convolutions and a ReLU (certified as
      ``1 + product``, looser);
    * :class:`~critics.layers.InvertibleDownsample` -> ``nn.PixelUnshuffle``;
    * any other module carrying a :class:`~critics.parametrizations.BjorckOrthonormal`
      parametrisation: the parametrisation removed, the orthonormalised weight kept.

    Parameter-free activations and padding (GroupSort, MaxMin, PadToMultiple) are kept as they
    are, and so are the cone heads (:class:`~critics.layers.PotentialHead` and its parts: plain
    torch operations on their own parameters, no parametrisation); a chain class that only adds
    methods to ``nn.Sequential`` (:class:`~critics.architectures.cones.ConeCritic`) becomes a plain
    ``nn.Sequential`` of the same layers. Each export reproduces the layer in eval mode (the mode a
    critic is evaluated and certified in); :func:`critics.certify` of the copy is the certificate of plain ``nn.Linear``
    and ``nn.Conv2d`` weights, equal to the original's for every family but SOC (whose export is
    a product of convolutions), strided AOC and the residual SLL / CPL blocks (see above): for those
    a valid, looser bound. The original model is not modified. Returns the copy.
    """
    model = copy.deepcopy(model)

    def strip(mod: nn.Module) -> nn.Module:
        if isinstance(mod, EXPORTABLE):
            return mod.export()  # type: ignore[operator]
        if parametrize.is_parametrized(mod):
            constraints = mod.parametrizations  # type: ignore[union-attr]
            for tensor_name in list(constraints.keys()):
                if any(isinstance(p, BjorckOrthonormal) for p in constraints[tensor_name]):
                    remove_bjorck(mod, tensor_name)
        for child_name, child in mod.named_children():
            if child_name != "parametrizations":
                setattr(mod, child_name, strip(child))
        chain_only = type(mod) is not nn.Sequential and type(mod).forward is nn.Sequential.forward
        if isinstance(mod, nn.Sequential) and chain_only:
            # a chain class that only adds methods (ConeCritic): the same chain as a plain nn.Sequential
            return nn.Sequential(OrderedDict(mod.named_children())).train(mod.training)
        return mod

    return strip(model)


#: The name deel-torchlip uses for the same operation.
vanilla_export = export
