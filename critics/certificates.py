"""Certified upper bounds on Lipschitz constants (L2 -> L2), per layer and for a whole critic.

A certificate here is a number L with Lip(f) <= L that holds for the weights actually used, in
exact arithmetic: every norm is computed in float64 and then rounded up by an explicit margin
c * n * eps (:func:`critics.norms.round_up`, c = :data:`critics.norms.ROUNDING_C`, n the size of
the computation), and so is every product and sum of norms, so that a computation landing a few
ulps under the true norm on another CPU or BLAS cannot make the certificate smaller than the
operator's norm. It never relies on an iteration having converged. (The float32 rounding of the
critic's own forward pass at evaluation is a separate error, of the order of 1e-7 relative per
layer: see ``wdist.precision``.)

* dense weights: the largest singular value (float64 SVD);
* stride-1 circular convolutions: exact, the largest singular value over all n x n frequencies of
  the FFT of the kernel (the operator is block-circulant);
* zero-padded convolutions: the same computation on an (n + k - 1) grid, an upper bound (a
  zero-padded convolution is a restriction of that circular one); strides only subsample, which
  cannot increase the norm;
* parameter-free 1-Lipschitz maps (GroupSort, MaxMin, ReLU, pixel (un)shuffle, flatten): 1;
* a module with a ``lipschitz_bound(input_shape)`` method certifies itself from the weights it
  uses: strided AOC convolutions by the FFT of their polyphase kernel, Cayley convolutions by the
  SVD of every per-frequency matrix, SOC by its series tail, the residual SLL / CPL blocks by
  ``max(1, 2 rho - 1)`` with their SDP condition checked (:mod:`critics.norms`);
* the network: the product over a chain of layers (``nn.Sequential``, nested).

This module walks a model and multiplies; the norms themselves are computed in
:mod:`critics.norms` (``dense_lipschitz_bound``, ``conv2d_lipschitz_bound`` and the full-SVD
reference ``conv2d_frequency_singular_values`` are re-exported here). Empirical *lower*
estimates (largest observed gradient norm) live in :mod:`critics.empirical` and are never used
in place of these bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from critics.norms import (
    conv2d_frequency_singular_values,
    conv2d_lipschitz_bound,
    dense_lipschitz_bound,
    round_up,
    same_conv_operator_norm,
)

__all__ = [
    "LayerCertificate",
    "CertificateReport",
    "certify",
    "certificate_report",
    "dense_lipschitz_bound",
    "conv2d_lipschitz_bound",
    "conv2d_frequency_singular_values",
    "CertificationError",
]


class CertificationError(TypeError):
    """Raised when a module's Lipschitz constant cannot be certified."""


# Parameter-free modules that are 1-Lipschitz in L2 (permutations, sorting, ReLU-like maps).
_ONE_LIPSCHITZ: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.PixelUnshuffle,
    nn.PixelShuffle,
    nn.Tanh,
    nn.Sigmoid,  # 1/4-Lipschitz; 1 is a valid bound
    nn.Dropout,  # identity in eval mode, which is how critics are certified
)


@dataclass
class LayerCertificate:
    """One factor of the product: a module's name, type, input shape and certified bound."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    bound: float


@dataclass
class CertificateReport:
    """Per-layer certificates and their product, the certified Lipschitz constant of the critic."""

    layers: list[LayerCertificate] = field(default_factory=list)

    @property
    def total(self) -> float:
        """The product of the layers' bounds, rounded up (one rounding per multiplication)."""
        out = 1.0
        for layer in self.layers:
            out *= layer.bound
        return round_up(out, len(self.layers))

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "layers": [
                {"name": c.name, "kind": c.kind, "input_shape": list(c.input_shape), "bound": c.bound}
                for c in self.layers
            ],
        }


def _kind(module: nn.Module) -> str:
    """Class name, without the ``Parametrized`` prefix torch.nn.utils.parametrize injects."""
    name = type(module).__name__
    if getattr(module, "parametrizations", None) is not None and name.startswith("Parametrized"):
        return name[len("Parametrized") :]
    return name


def _circular_repeat_factor(module: nn.Conv2d, input_size: tuple[int, ...]) -> float:
    """Norm of the output selection of a circularly padded convolution relative to the n x n one.

    With total padding ``P`` per dimension, a (stride-1) circularly padded convolution has
    ``n + P - k + 1`` outputs, each equal to an output of the n x n circular convolution; when
    ``P > k - 1`` some of those are repeated, up to ``ceil((n + P - k + 1) / n)`` times, which
    multiplies the norm by at most the square root of the repetition count (1 for the usual
    ``P = k - 1`` "same" padding).
    """
    rev = module._reversed_padding_repeated_twice  # [w_left, w_right, h_left, h_right]
    totals = (rev[2] + rev[3], rev[0] + rev[1])
    repeats = 1
    for n, k, pad in zip(input_size, module.kernel_size, totals):
        out = int(n) + int(pad) - int(k) + 1
        repeats *= max(1, -(-out // int(n)))
    return 1.0 if repeats == 1 else round_up(float(repeats) ** 0.5, 1)


def _module_bound(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, float]:
    """Certified bound of one non-container module, given its input shape (no batch dim)."""
    if hasattr(module, "lipschitz_bound") and callable(module.lipschitz_bound):
        return _kind(module), float(module.lipschitz_bound(input_shape))
    if isinstance(module, _ONE_LIPSCHITZ):
        return _kind(module), 1.0
    if isinstance(module, nn.LeakyReLU):
        return "LeakyReLU", max(1.0, abs(float(module.negative_slope)))
    if isinstance(module, nn.Linear):
        return "Linear", dense_lipschitz_bound(module.weight)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.dilation not in ((1, 1), 1):
            raise CertificationError(
                f"cannot certify Conv2d with groups={module.groups}, dilation={module.dilation}: "
                "only groups=1, dilation=1 are supported"
            )
        if module.padding_mode not in ("zeros", "circular"):
            raise CertificationError(
                f"cannot certify Conv2d with padding_mode={module.padding_mode!r}: only 'zeros' and "
                "'circular' are supported (reflect/replicate padding repeats pixels, which can "
                "increase the norm)"
            )
        if module.padding_mode == "zeros" and _pads_same(module):
            # exact from the operator's matrix on small grids, as the package's own layers
            bound = same_conv_operator_norm(module.weight, input_shape[-2:], padding_mode="zeros")
        else:
            # a stride only subsamples the output, which cannot increase the norm
            bound = conv2d_lipschitz_bound(module.weight, input_shape[-2:], padding_mode=module.padding_mode)
        if module.padding_mode == "circular":
            bound = round_up(bound * _circular_repeat_factor(module, input_shape[-2:]), 1)
        return "Conv2d", bound
    raise CertificationError(
        f"cannot certify a module of type {type(module).__name__}: it has no lipschitz_bound(input_shape) "
        "method and is not one of Linear, Conv2d, LeakyReLU or the 1-Lipschitz parameter-free modules "
        f"({', '.join(t.__name__ for t in _ONE_LIPSCHITZ)})"
    )


def _pads_same(conv: nn.Conv2d) -> bool:
    """Whether a ``Conv2d`` is a stride-1 "same" convolution padded as the package's layers are:
    ``padding="same"`` (torch pads ``(k - 1) // 2`` before), or an odd kernel padded ``k // 2``
    on every side."""
    if tuple(conv.stride) != (1, 1):
        return False
    if conv.padding == "same":
        return True
    kh, kw = conv.kernel_size
    return kh % 2 == 1 and kw % 2 == 1 and tuple(conv.padding) == (kh // 2, kw // 2)


def _record_input_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Module, list[tuple[int, ...]]]:
    """Input shape (no batch dim) of every call of every module, in call order."""
    shapes: dict[nn.Module, list[tuple[int, ...]]] = {}

    def hook(mod: nn.Module, args: tuple) -> None:
        # parametrization modules (torch.nn.utils.parametrize) are called with no arguments
        if args and isinstance(args[0], Tensor):
            shapes.setdefault(mod, []).append(tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        p = next(iter(model.parameters()), None)
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        device = p.device if p is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), dtype=dtype, device=device))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def certificate_report(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> CertificateReport:
    """Per-layer certificates of a critic and their product.

    The model must be a chain: ``nn.Sequential`` containers (nested freely) whose leaves each have
    a certified bound (see :func:`_module_bound`). Any other composition is refused, since the
    product rule would not apply to it.
    """
    input_shape = tuple(int(s) for s in input_shape)
    report = CertificateReport()
    # Everything (the shape-recording forward and every weight read) happens in eval mode, the
    # mode the critic is evaluated in: reading a parametrised weight in training mode can change
    # it (spectral_norm's power iteration updates its buffers), so the bound would be for a
    # weight other than the one used. Each module's own mode is restored afterwards.
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        shapes = _record_input_shapes(model, input_shape)
        with torch.no_grad():  # weights read as in evaluation (cached where layers cache them)
            _walk_chain(model, shapes, report)
    finally:
        for m, mode in modes:  # pre-order, so a parent's train() never overrides a child's mode
            m.train(mode)
    return report


def _walk_chain(model: nn.Module, shapes: dict[nn.Module, list[tuple[int, ...]]], report: CertificateReport) -> None:
    """Append the certificate of every leaf of the (nested) ``nn.Sequential`` chain to ``report``.

    A module placed several times in the chain counts once per place (its factor multiplies
    each time); a subclass of ``nn.Sequential`` with its own ``forward`` (a residual block, say)
    is refused, since the product rule only holds for the plain chain.
    """
    calls = {m: list(v) for m, v in shapes.items()}

    def walk(mod: nn.Module, prefix: str) -> None:
        if isinstance(mod, nn.Sequential) and not hasattr(mod, "lipschitz_bound"):
            if type(mod).forward is not nn.Sequential.forward:
                raise CertificationError(
                    f"cannot certify {prefix or 'the model'} ({type(mod).__name__}): a subclass of nn.Sequential "
                    "with its own forward is not a plain chain, so the product of its layers' bounds need not "
                    "bound it; give it a lipschitz_bound(input_shape) method or use nn.Sequential"
                )
            for name, child in mod._modules.items():  # every place, also of a module placed twice
                if child is not None:
                    walk(child, f"{prefix}.{name}" if prefix else name)
            return
        if not calls.get(mod):
            return  # never called in the forward pass (e.g. an unused branch): contributes nothing
        shape = calls[mod].pop(0)
        kind, bound = _module_bound(mod, shape)
        report.layers.append(LayerCertificate(prefix or type(mod).__name__, kind, shape, bound))

    walk(model, "")


def certify(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> float:
    r"""Certified upper bound on :math:`\mathrm{Lip}(f)` (L2 -> L2) of a chain-structured critic.

    The product of per-layer certificates (float64), on inputs of shape ``input_shape`` (no batch
    dimension). See :func:`certificate_report` for the factors.
    """
    return certificate_report(model, input_shape).total
