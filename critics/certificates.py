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
* the layers of :mod:`critics.layers` certify themselves from the weights they use (their
  ``lipschitz_bound`` method, registered as their rule): strided AOC convolutions by the FFT of
  their polyphase kernel, Cayley convolutions by the SVD of every per-frequency matrix, SOC by its
  series tail, the residual SLL / CPL blocks by ``max(1, 2 rho - 1)`` with their SDP condition
  checked (:mod:`critics.norms`);
* the network: the product over a chain of layers (``nn.Sequential``, nested).

Which rule certifies which module is the registry of :mod:`critics.rules` (the rules above are
registered there; a user registers others with :func:`critics.register_certificate_rule`, marked
user-asserted). A module no rule describes is refused with a message naming it: a subclass that
changes its base's forward, a module with a forward hook, an unsupported parametrisation.

This module walks a model and multiplies; the norms themselves are computed in
:mod:`critics.norms` (``dense_lipschitz_bound``, ``conv2d_lipschitz_bound`` and the full-SVD
reference ``conv2d_frequency_singular_values`` are re-exported here). Empirical *lower*
estimates (largest observed gradient norm) live in :mod:`critics.empirical` and are never used
in place of these bounds.
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _Orthogonal, _SpectralNorm, _WeightNorm

from critics.norms import (
    conv2d_frequency_singular_values,
    conv2d_lipschitz_bound,
    dense_lipschitz_bound,
    round_up,
    same_conv_operator_norm,
)
from critics.rules import (
    CertificationError,
    check_hooks,
    is_chain,
    register_certificate_rule,
    register_parametrization,
    rule_for,
    unwrap,
    wdist_hook,
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
    "register_certificate_rule",
]


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
    """One factor of the product: a module's name, type, input shape and certified bound, and whether
    the bound rests on a user-asserted rule (its own, or one a rule inside it used)."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    bound: float
    user_asserted: bool = False

    def as_dict(self) -> dict:
        """Plain values (JSON-ready)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "bound": self.bound,
            "user_asserted": self.user_asserted,
        }


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

    @property
    def user_asserted(self) -> list[LayerCertificate]:
        """The layers whose bound rests on a user-asserted rule (empty: every rule is wdist's own)."""
        return [layer for layer in self.layers if layer.user_asserted]

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "user_asserted": bool(self.user_asserted),
            "layers": [c.as_dict() for c in self.layers],
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


def _one_lipschitz(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """1: a parameter-free map that is 1-Lipschitz in L2 (in eval mode for ``Dropout``)."""
    return 1.0


def _leaky_relu(module: nn.LeakyReLU, input_shape: tuple[int, ...]) -> float:
    """``max(1, |slope|)``: the largest derivative of the pointwise map."""
    return max(1.0, abs(float(module.negative_slope)))


def _linear(module: nn.Linear, input_shape: tuple[int, ...]) -> float:
    """The float64 largest singular value of the weight as used (:func:`dense_lipschitz_bound`)."""
    return dense_lipschitz_bound(module.weight)


def _conv2d(module: nn.Conv2d, input_shape: tuple[int, ...]) -> float:
    """A ``Conv2d`` with ``groups=1``, ``dilation=1`` and zero or circular padding: exact from the
    operator's matrix on small grids for stride-1 "same" zero padding, else the FFT bound on the
    padded grid (a stride only subsamples, which cannot increase the norm), times the repetition
    factor of circular padding wider than "same" (:func:`_circular_repeat_factor`)."""
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
    return bound


for _type in _ONE_LIPSCHITZ:
    register_certificate_rule(_type, _one_lipschitz, user_asserted=False)
register_certificate_rule(nn.LeakyReLU, _leaky_relu, user_asserted=False)
register_certificate_rule(nn.Linear, _linear, user_asserted=False)
register_certificate_rule(nn.Conv2d, _conv2d, user_asserted=False)
for _type in (_SpectralNorm, _Orthogonal, _WeightNorm):
    register_parametrization(_type, user_asserted=False)

#: Rules being applied (innermost last): a rule that certifies its module through
#: :func:`certificate_report` (a residual block's branch) records there the user-asserted rules it used.
_APPLYING: ContextVar[tuple[list[str], ...]] = ContextVar("critics_rules_applying", default=())


def _module_bound(module: nn.Module, input_shape: tuple[int, ...], where: str) -> tuple[str, float, bool]:
    """``(kind, bound, user_asserted)`` of one module certified by its rule (:func:`critics.rules.rule_for`),
    given its input shape (no batch dim); ``where`` names it in messages."""
    rule, user = rule_for(module, where)
    check_hooks(module, f"{where} ({type(module).__name__})")
    nested: list[str] = []
    token = _APPLYING.set((*_APPLYING.get(), nested))
    try:
        bound = float(rule.rule(module, input_shape))
    finally:
        _APPLYING.reset(token)
    if math.isnan(bound) or bound < 0:
        raise CertificationError(
            f"the certificate rule of {where} ({rule.name}) returned {bound!r}; a Lipschitz bound is a number >= 0"
        )
    user = user or bool(nested)
    outer = _APPLYING.get()
    if user and outer:
        outer[-1].append(where)
    return _kind(module), bound, user


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


def _eager() -> contextlib.AbstractContextManager:
    """Compiled modules run eagerly inside (so the recording pre-hooks run as they are)."""
    compiler = getattr(torch, "compiler", None)
    set_stance = getattr(compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def _record_input_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[nn.Module, list[tuple[int, ...]]]:
    """Input shape (no batch dim) of every call of every module, in call order."""
    shapes: dict[nn.Module, list[tuple[int, ...]]] = {}

    def hook(mod: nn.Module, args: tuple) -> None:
        # parametrization modules (torch.nn.utils.parametrize) are called with no arguments
        if args and isinstance(args[0], Tensor):
            shapes.setdefault(mod, []).append(tuple(args[0].shape[1:]))

    wdist_hook(hook)  # it only records
    hooks = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        p = next(iter(model.parameters()), None)
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        device = p.device if p is not None else torch.device("cpu")
        with torch.no_grad(), _eager():
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
    each time); wrappers are certified on the module they run (:func:`critics.rules.unwrap`); a
    subclass of ``nn.Sequential`` with its own ``forward`` (a residual block, say) is refused
    unless a rule is registered for it, since the product rule only holds for the plain chain.
    """
    calls = {m: list(v) for m, v in shapes.items()}

    def walk(mod: nn.Module, prefix: str) -> None:
        where = f"module {prefix!r}" if prefix else "the model"
        mod = unwrap(mod, where)
        if is_chain(mod, where):
            check_hooks(mod, f"{where} ({type(mod).__name__})", recurse=False)
            for name, child in mod._modules.items():  # every place, also of a module placed twice
                if child is not None:
                    walk(child, f"{prefix}.{name}" if prefix else name)
            return
        if not calls.get(mod):
            return  # never called in the forward pass (e.g. an unused branch): contributes nothing
        shape = calls[mod].pop(0)
        kind, bound, user = _module_bound(mod, shape, where)
        report.layers.append(LayerCertificate(prefix or type(mod).__name__, kind, shape, bound, user))

    walk(model, "")


def certify(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> float:
    r"""Certified upper bound on :math:`\mathrm{Lip}(f)` (L2 -> L2) of a chain-structured critic.

    The product of per-layer certificates (float64), on inputs of shape ``input_shape`` (no batch
    dimension). See :func:`certificate_report` for the factors.
    """
    return certificate_report(model, input_shape).total
