"""The stage skeleton shared by the image critics (dcgan, convnet, lipconvnet).

A critic is a flat chain (nested ``nn.Sequential``, so :func:`critics.certify` applies)::

    stage_i = [PadToMultiple(2) if H or W is odd] -> body_i (halves H and W, c_{i-1} -> c_i)
    critic  = stage_1 -> ... -> stage_S -> Flatten -> head (-> 1)

with S, the widths c_i and the padding from :func:`stage_plan` and :func:`stage_widths`. The
LipConvnet critics (:mod:`~critics.architectures.lipconvnet`, :mod:`~critics.architectures.convnet`)
share one body as well (:func:`lipconvnet_critic`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from torch import nn

from critics._checks import check_int
from critics.layers.activations import checked_activation
from critics.layers.bjorck import BjorckLinear
from critics.layers.downsample import InvertibleDownsample, PadToMultiple

__all__ = [
    "BASE_WIDTHS",
    "LIPSCHITZ_ACTIVATIONS",
    "default_width",
    "stage_plan",
    "stage_widths",
    "planned_stages",
    "staged_critic",
    "lipconvnet_critic",
]

BASE_WIDTHS = (64, 128, 256, 512)
#: The activations of the Lipschitz families (``groupsort`` covers MaxMin and GroupSort-N).
LIPSCHITZ_ACTIVATIONS = ("groupsort", "relu")


def default_width(input_shape: tuple[int, ...]) -> float:
    """Width multiplier used when none is given: 0.25 for inputs up to 16 x 16 (the digits
    default, fast on a CPU), 1.0 otherwise (the published widths)."""
    return 0.25 if max(input_shape[-2:]) <= 16 else 1.0


def stage_plan(name: str, input_shape: tuple[int, ...], max_stages: int = 4) -> list[tuple[int, int, bool]]:
    """``[(H, W, pad_to_even), ...]`` at the input of each downsampling stage; checks the shape."""
    if len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (C, H, W); got {tuple(input_shape)}")
    h, w = int(input_shape[1]), int(input_shape[2])
    if min(h, w) < 2:
        raise ValueError(f"{name}: images must be at least 2 x 2; got input_shape {tuple(input_shape)}")
    plan = []
    while len(plan) < max_stages and min(h, w) >= 2:
        pad = bool(h % 2 or w % 2)
        plan.append((h, w, pad))
        h, w = (h + 1) // 2, (w + 1) // 2
    return plan


def stage_widths(name: str, width: float, stages: int, base: tuple[int, ...] = BASE_WIDTHS) -> list[int]:
    """``base[i] * width`` rounded to an even count >= 2, for the first ``stages`` stages."""
    if not float(width) > 0:
        raise ValueError(f"{name}: width must be a positive multiplier; got {width!r}")
    return [max(2, 2 * round(b * float(width) / 2)) for b in base[:stages]]


def planned_stages(
    name: str, input_shape: tuple[int, ...], width: float | None, activation: str, allowed: tuple[str, ...]
) -> tuple[list[tuple[int, int, bool]], list[int], Callable[[], nn.Module]]:
    """The checked plan of critic ``name``: :func:`stage_plan`, :func:`stage_widths` (``width`` or
    :func:`default_width`) and the activation factory (``activation``, one of the ``allowed`` kinds)."""
    plan = stage_plan(name, input_shape)
    widths = stage_widths(name, default_width(input_shape) if width is None else width, len(plan))
    return plan, widths, checked_activation(name, activation, allowed, widths)


def staged_critic(
    input_shape: tuple[int, ...],
    plan: list[tuple[int, int, bool]],
    widths: list[int],
    body: Callable[[int, int, tuple[int, int]], list[nn.Module]],
    head: Callable[[int], nn.Module],
) -> nn.Sequential:
    """The chain of the module docstring: ``body(c_in, c_out, grid)`` gives the modules of one stage
    after its padding (``grid``: its output H x W), ``head(features)`` the last layer. Modules are
    built in chain order (so a seed gives the same weights whatever the family)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c = int(input_shape[0])
    for i, ((h, w, pad), c_out) in enumerate(zip(plan, widths), start=1):
        grid = ((h + 1) // 2, (w + 1) // 2)
        stage: list[nn.Module] = [PadToMultiple(2)] if pad else []
        layers[f"stage{i}"] = nn.Sequential(*stage, *body(c, c_out, grid))
        c, (h, w) = c_out, grid
    layers["flatten"] = nn.Flatten()
    layers["head"] = head(c * h * w)
    return nn.Sequential(layers)


def lipconvnet_critic(
    name: str,
    input_shape: tuple[int, ...],
    width: float | None,
    depth: int,
    activation: str,
    entry: Callable[[int, int, tuple[int, int]], nn.Module],
    block: Callable[[int, tuple[int, int]], nn.Module],
    activated: bool,
) -> nn.Sequential:
    """The LipConvnet skeleton of critic ``name`` (the chain of the module docstring)::

        body_i = InvertibleDownsample(2) -> entry(4 c_{i-1}, c_i, grid) -> activation
                 -> depth x [block(c_i, grid) (-> activation if ``activated``)]
        head   = BjorckLinear(features, 1)

    ``grid`` is the stage's output H x W; ``activated`` is False for residual blocks that carry
    their own ReLU. ``depth`` >= 0, ``activation`` one of :data:`LIPSCHITZ_ACTIVATIONS`."""
    check_int(name, "depth", depth, minimum=0)
    plan, widths, act = planned_stages(name, input_shape, width, activation, LIPSCHITZ_ACTIVATIONS)

    def body(c_in: int, c_out: int, grid: tuple[int, int]) -> list[nn.Module]:
        stage = [InvertibleDownsample(2), entry(4 * c_in, c_out, grid), act()]
        for _ in range(int(depth)):
            stage += [block(c_out, grid), act()] if activated else [block(c_out, grid)]
        return stage

    return staged_critic(input_shape, plan, widths, body, lambda features: BjorckLinear(features, 1))
