"""The certificate-rule registry: which rule certifies which module type, and when a rule applies.

A *certificate rule* is a function ``rule(module, input_shape) -> float`` returning a certified
upper bound on the L2 -> L2 Lipschitz constant of ``module`` on inputs of shape ``input_shape``
(no batch dimension), computed from the weights the module actually uses and rounded up as in
:mod:`critics.norms`. :func:`critics.certify` multiplies the rules' values along a chain, so every
factor must hold for the function the module computes, or the product is not a bound.

One registry holds every rule: the torch modules wdist supports (``nn.Linear``, ``nn.Conv2d``,
``nn.LeakyReLU``, the parameter-free 1-Lipschitz maps; registered in :mod:`critics.certificates`)
and every layer of :mod:`critics.layers` (registered next to its class), all with
``user_asserted=False``: their rules are wdist's own, tested against exact Jacobians. A rule
registered by anyone else (:func:`register_certificate_rule`, default ``user_asserted=True``) is
*user-asserted*: wdist applies it as given and cannot check it, and every certificate that uses
it says so (per layer in :class:`critics.certificates.LayerCertificate`, for a run in
``result.json`` and its summary).

When a rule applies to a module (:func:`rule_for`), a refusal naming the module otherwise:

* its type has a rule (exact match); or its nearest registered base class has one and no class in
  between adds anything that could change what that class's forward computes: only
  ``__init__``, ``reset_parameters`` (and ``_init_free``, which the convolutions'
  ``reset_parameters`` calls), ``extra_repr``, ``__repr__`` and plain (non-callable) class
  attributes are allowed (so a StyleGAN-style ``EqualLinear(nn.Linear)`` with its own forward, or
  a subclass overriding ``__call__`` or ``_conv_forward``, is refused);
* no method is overridden on the instance itself (``module.forward = ...``);
* a class made by ``torch.nn.utils.parametrize`` (``Parametrized<Base>``) counts as its base class
  when every parametrisation on it is a supported one (:func:`register_parametrization`; built in:
  torch's ``spectral_norm``, ``orthogonal`` and ``weight_norm`` from
  ``torch.nn.utils.parametrizations`` and :class:`critics.parametrizations.BjorckOrthonormal`).
  Sound because a rule reads the parametrised tensor through the module (``module.weight``), the
  very value forward reads, in eval mode (:func:`critics.certificate_report` certifies in eval
  mode), and these parametrisations are deterministic functions of their parameters and buffers
  that change no state in eval mode. An unknown parametrisation could be random or stateful, so
  the value the rule reads need not be the one forward used: it is refused;
* neither the module nor any module inside it has a forward hook or forward pre-hook (nor does
  torch hold a global one) that wdist did not install (:func:`wdist_hook`): a hook can replace a
  module's input or output, which no rule sees.

Wrappers that run a module without changing its function are unwrapped and the wrapped module is
certified (:func:`unwrap`): ``torch.compile``'s ``OptimizedModule`` (``_orig_mod``),
``nn.parallel.DistributedDataParallel`` and ``nn.DataParallel`` (``module``), and
``torch.optim.swa_utils.AveragedModel`` (``module``, the averaged copy it evaluates).
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union, overload

from torch import nn
from torch.nn.modules import module as _torch_module
from torch.nn.utils import parametrize

__all__ = [
    "CertificateRule",
    "CertificationError",
    "Rule",
    "register_certificate_rule",
    "register_parametrization",
    "certificate_rules",
    "supported_parametrizations",
    "rule_for",
    "is_chain",
    "check_hooks",
    "unwrap",
    "wdist_hook",
]

#: ``rule(module, input_shape) -> float``: a certified L2 -> L2 bound of ``module`` on inputs of
#: ``input_shape`` (no batch dimension), rounded up (:func:`critics.norms.round_up`).
Rule = Callable[[Any, tuple[int, ...]], float]
R = TypeVar("R", bound=Rule)


class CertificationError(TypeError):
    """Raised when a module's Lipschitz constant cannot be certified; the message names the module
    (its place in the model and its class) and what to do instead."""


@dataclass(frozen=True)
class CertificateRule:
    """A registered rule: the module type it certifies, the function, and whether it is
    user-asserted (registered from outside wdist, so wdist cannot vouch for it)."""

    module_type: type
    rule: Rule
    user_asserted: bool

    @property
    def name(self) -> str:
        """``module.QualifiedName`` of the type."""
        return f"{self.module_type.__module__}.{self.module_type.__qualname__}"


_RULES: dict[type, CertificateRule] = {}
_PARAMETRIZATIONS: dict[type, bool] = {}  # parametrisation type -> user_asserted

#: What a subclass may define and still be certified by its base class's rule: these build,
#: initialise or describe the module; they take no part in its forward (``_init_free`` is the
#: initialisation step of :meth:`critics.layers.LipschitzConv2d.reset_parameters`).
_NEUTRAL_METHODS = frozenset({"__init__", "reset_parameters", "_init_free", "extra_repr", "__repr__"})

#: Entries every class body has, whatever it defines.
_CLASS_METADATA = frozenset(
    {
        "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__",
        "__firstlineno__", "__static_attributes__", "__orig_bases__", "__parameters__",
        "__annotate__", "__annotate_func__", "__annotations_cache__", "__slotnames__",
    }
)  # fmt: skip

#: What ``torch.nn.utils.parametrize`` puts in the class it makes, besides one property per tensor.
_PARAMETRIZE_ENTRIES = frozenset({"__getstate__", "__deepcopy__"})

#: Attribute marking a hook wdist installed itself (it does not change the module's function).
_WDIST_HOOK = "__wdist_certificate_neutral__"


def _check_type(module_type: Any, what: str) -> type:
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"{what}: module_type must be a subclass of torch.nn.Module; got {module_type!r}")
    return module_type


@overload
def register_certificate_rule(
    module_type: type, rule: None = None, *, user_asserted: bool = True, replace: bool = False
) -> Callable[[R], R]: ...


@overload
def register_certificate_rule(
    module_type: type, rule: R, *, user_asserted: bool = True, replace: bool = False
) -> R: ...


def register_certificate_rule(
    module_type: type, rule: Optional[R] = None, *, user_asserted: bool = True, replace: bool = False
) -> Union[R, Callable[[R], R]]:
    r"""Register ``rule`` as the certificate of modules of type ``module_type``.

    .. math::

        \mathrm{Lip}\big(x \mapsto \mathrm{module}(x)\big) \le \mathrm{rule}(\mathrm{module},
        \mathrm{input\_shape}) \quad \text{(L2 -> L2, on inputs of that shape)}

    Usable as a decorator::

        @critics.register_certificate_rule(MyLayer)
        def my_layer_rule(module, input_shape):
            return critics.norms.dense_lipschitz_bound(module.weight) * module.scale

    Parameters
    ----------
    module_type : type
        A subclass of ``torch.nn.Module``. The rule also certifies subclasses that add nothing
        to what it computes (see :mod:`critics.rules`).
    rule : callable, optional
        ``rule(module, input_shape) -> float``, an upper bound in the units of the module's
        output per unit of input, from the weights the module uses (read them through the
        module, e.g. ``module.weight``), rounded up by :func:`critics.norms.round_up`. Omitted:
        returns a decorator.
    user_asserted : bool
        ``True`` (the default) for every rule registered outside wdist: certificates that use it
        are marked user-asserted. wdist's own layers register with ``False``.
    replace : bool
        Allow replacing the rule already registered for ``module_type``.

    Returns
    -------
    The rule (or, without ``rule``, a decorator that registers its function and returns it).

    Raises
    ------
    TypeError
        ``module_type`` is not a module class, or ``rule`` is not callable.
    ValueError
        ``module_type`` already has a rule and ``replace`` is not set, or it is ``nn.Sequential``
        or a wrapper (certified through their structure / what they wrap).
    """
    module_type = _check_type(module_type, "register_certificate_rule")
    if module_type is nn.Sequential or module_type in _wrapper_types():
        raise ValueError(
            f"register_certificate_rule: {module_type.__name__} is certified through what it holds (a chain is the "
            "product of its layers, a wrapper is its wrapped module); register rules for the layers inside instead"
        )

    def register(fn: R) -> R:
        if not callable(fn):
            raise TypeError(f"register_certificate_rule: rule must be callable(module, input_shape); got {fn!r}")
        old = _RULES.get(module_type)
        if old is not None and not replace:
            raise ValueError(
                f"register_certificate_rule: {old.name} already has a certificate rule "
                f"({getattr(old.rule, '__qualname__', old.rule)!r}, "
                f"{'user-asserted' if old.user_asserted else 'wdist'}); pass replace=True to replace it"
            )
        _RULES[module_type] = CertificateRule(module_type, fn, bool(user_asserted))
        return fn

    return register if rule is None else register(rule)


def register_parametrization(parametrization_type: type, *, user_asserted: bool = True) -> type:
    """Accept modules parametrised (``torch.nn.utils.parametrize``) with ``parametrization_type``.

    A rule reads a parametrised tensor through its module, so it certifies the value the
    parametrisation returns at that read. Register only parametrisations whose value in eval mode
    is a deterministic function of their parameters and buffers and that change no state when
    called in eval mode (not random, not counting calls): then the value the rule reads is the
    value forward uses. Modules that carry a user-registered parametrisation are certified as
    user-asserted. Returns the type (usable as a class decorator).
    """
    _PARAMETRIZATIONS[_check_type(parametrization_type, "register_parametrization")] = bool(user_asserted)
    return parametrization_type


def certificate_rules() -> dict[type, CertificateRule]:
    """Every registered rule, by module type (a copy), wdist's own and user-asserted alike."""
    return dict(sorted(_RULES.items(), key=lambda item: (item[1].user_asserted, item[1].name)))


def supported_parametrizations() -> dict[type, bool]:
    """Parametrisation types accepted on a certified module -> whether user-asserted (a copy)."""
    return dict(_PARAMETRIZATIONS)


def wdist_hook(hook: Any) -> Any:
    """Mark ``hook`` as one of wdist's own (it only checks or records; it never changes a module's
    input or output), so that :func:`check_hooks` lets it pass. Returns the hook."""
    setattr(hook, _WDIST_HOOK, True)
    return hook


def _hook_name(hook: Any) -> str:
    fn = getattr(hook, "func", hook)  # functools.partial
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    where = getattr(fn, "__module__", None)
    return f"{name} from {where}" if where else name


@functools.lru_cache(maxsize=None)
def _parallel_wrappers() -> dict[type, str]:
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    from torch.optim.swa_utils import AveragedModel

    return {DistributedDataParallel: "module", DataParallel: "module", AveragedModel: "module"}


def _wrapper_types() -> dict[type, str]:
    """Wrapper type -> the attribute holding the module it runs unchanged.

    ``torch.compile``'s ``OptimizedModule`` is among them once ``torch._dynamo`` is loaded: no such
    module (nor its class) exists before, and importing it here would cost every ``import critics``
    about 1.5 s."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    optimized = getattr(eval_frame, "OptimizedModule", None)
    wrappers = _parallel_wrappers()
    return wrappers if optimized is None else {**wrappers, optimized: "_orig_mod"}


def unwrap(module: nn.Module, where: str) -> nn.Module:
    """The module a wrapper runs (repeatedly, for nested wrappers), each wrapper's hooks checked
    first; ``module`` itself when it is no wrapper. ``where`` names it in messages."""
    wrappers = _wrapper_types()
    while type(module) in wrappers:
        check_hooks(module, where, recurse=False)
        module = getattr(module, wrappers[type(module)])
    return module


def check_hooks(module: nn.Module, where: str, recurse: bool = True) -> None:
    """Refuse a forward hook or forward pre-hook on ``module`` (and, with ``recurse``, on any module
    inside it) or a global one that wdist did not install, naming the module and the hook."""
    for kind, hooks in (
        ("global forward pre-hook", _torch_module._global_forward_pre_hooks),
        ("global forward hook", _torch_module._global_forward_hooks),
    ):
        for hook in hooks.values():
            if not getattr(hook, _WDIST_HOOK, False):
                raise CertificationError(
                    f"cannot certify {where}: torch holds a {kind} ({_hook_name(hook)}) that runs on every module "
                    "and may change its input or output, which no certificate rule sees. Remove it (the handle's "
                    ".remove()) before certifying."
                )
    named = module.named_modules() if recurse else [("", module)]
    for name, sub in named:
        for kind, hooks in (("forward pre-hook", sub._forward_pre_hooks), ("forward hook", sub._forward_hooks)):
            for hook in hooks.values():
                if getattr(hook, _WDIST_HOOK, False):
                    continue
                inside = f" (its submodule {name!r}, {type(sub).__name__})" if name else ""
                raise CertificationError(
                    f"cannot certify {where}{inside}: it has a {kind} ({_hook_name(hook)}) that wdist did not install; "
                    "a hook can change the module's input or output, which its certificate rule does not see. "
                    "Remove the hook (the handle's .remove()) before certifying."
                )


def _parametrized_base(module: nn.Module, where: str) -> tuple[type, bool]:
    """``(class, user_asserted)``: the base class of a ``torch.nn.utils.parametrize`` class with only
    supported parametrisations on it (refused otherwise); the module's own class for any other."""
    cls = type(module)
    if not (cls.__module__ == parametrize.__name__ and parametrize.is_parametrized(module)):
        return cls, False
    base = cls.__bases__[0]
    tensors = set(module.parametrizations.keys())  # type: ignore[union-attr]
    extra = set(cls.__dict__) - _CLASS_METADATA - _PARAMETRIZE_ENTRIES - tensors
    if len(cls.__bases__) != 1 or extra or not all(isinstance(cls.__dict__.get(t), property) for t in tensors):
        raise CertificationError(
            f"cannot certify {where} ({cls.__name__}): its class is not one torch.nn.utils.parametrize made "
            f"(it also defines {sorted(extra) or 'other bases'}); register a certificate rule for it"
        )
    user = False
    for tensor in sorted(tensors):
        for p in module.parametrizations[tensor]:  # type: ignore[index]
            if type(p) not in _PARAMETRIZATIONS:
                raise CertificationError(
                    f"cannot certify {where} ({base.__name__} with parametrisation {type(p).__name__} on {tensor!r}): "
                    "wdist certifies the parametrised value a rule reads, which is the value forward uses only for "
                    "deterministic parametrisations without state changes in eval mode; supported: "
                    f"{', '.join(sorted(t.__name__ for t in _PARAMETRIZATIONS))}. If yours is such a map, declare it "
                    "with critics.register_parametrization(its type) (certificates using it are then marked "
                    "user-asserted)."
                )
            user = user or _PARAMETRIZATIONS[type(p)]
    return base, user


def _added_behaviour(cls: type, base: type) -> list[str]:
    """Names that the classes from ``cls`` down to (not including) ``base`` in ``cls``'s MRO define and
    that may change what ``base``'s forward computes: methods other than the neutral ones, and
    descriptors (properties, static or class methods)."""
    found: list[str] = []
    for klass in cls.__mro__:
        if klass is base:
            break
        for key, value in vars(klass).items():
            if key in _CLASS_METADATA or key in _NEUTRAL_METHODS:
                continue
            if callable(value) or inspect.isdatadescriptor(value) or isinstance(value, (staticmethod, classmethod)):
                found.append(key if klass is cls else f"{klass.__name__}.{key}")
    return found


#: What ``nn.Sequential``'s forward runs through: calling the module, iterating over its children,
#: reaching them by attribute. A subclass that overrides none of these computes the plain chain of
#: its children, whatever other methods it adds (no code path calls them during the forward).
_SEQUENTIAL_CALL_PATH = frozenset(
    {
        "forward", "__call__", "_call_impl", "_wrapped_call_impl", "__iter__", "__len__", "__getitem__",
        "_get_item_by_idx", "__getattr__", "__getattribute__", "_modules",
    }
)  # fmt: skip


def _sequential_call_path_overrides(cls: type) -> list[str]:
    """Names of :data:`_SEQUENTIAL_CALL_PATH` that the classes between ``cls`` and ``nn.Sequential``
    define (anything else they add cannot change the chain's forward)."""
    found: list[str] = []
    for klass in cls.__mro__:
        if klass is nn.Sequential:
            break
        found += [k if klass is cls else f"{klass.__name__}.{k}" for k in vars(klass) if k in _SEQUENTIAL_CALL_PATH]
    return found


def is_chain(module: nn.Module, where: str) -> bool:
    """Whether ``module`` is certified as a chain (the product of its children): an ``nn.Sequential``,
    or a subclass that has no rule of its own and leaves ``nn.Sequential``'s forward and the way it
    reaches its children untouched (:data:`_SEQUENTIAL_CALL_PATH`; helper methods of its own are
    fine). A subclass that changes its forward and has no rule is refused (the product of its
    layers' bounds need not bound it)."""
    if not isinstance(module, nn.Sequential):
        return False
    cls = type(module)
    if any(k in _RULES for k in cls.__mro__[: cls.__mro__.index(nn.Sequential)]):
        return False
    added = _sequential_call_path_overrides(cls)
    if added:
        raise CertificationError(
            f"cannot certify {where} ({cls.__name__}): a subclass of nn.Sequential with its own forward "
            f"(it defines {', '.join(added)}) is not a plain chain, so the product of its layers' bounds need not "
            f"bound it; register a certificate rule for {cls.__name__} (critics.register_certificate_rule, "
            "marked user-asserted) or use nn.Sequential"
        )
    return True


def rule_for(module: nn.Module, where: str) -> tuple[CertificateRule, bool]:
    """The rule certifying ``module`` and whether using it is user-asserted (the rule, or a
    parametrisation on the module, registered from outside wdist).

    ``where`` names the module in messages (its path in the model). Raises
    :class:`CertificationError` when no rule describes the module (see :mod:`critics.rules`).
    """
    cls, user_param = _parametrized_base(module, where)
    name = f"{where} ({type(module).__name__})"
    overridden = sorted(k for k in vars(module) if callable(getattr(cls, k, None)) and not k.startswith("__"))
    if overridden:
        raise CertificationError(
            f"cannot certify {name}: it replaces {', '.join(overridden)} on the instance, so no rule for its class "
            "describes what it computes; certify a module without such assignments"
        )
    exact = _RULES.get(cls)
    if exact is not None:
        return exact, exact.user_asserted or user_param
    for base in cls.__mro__[1:]:
        found = _RULES.get(base)
        if found is None:
            continue
        added = _added_behaviour(cls, base)
        if added:
            raise CertificationError(
                f"cannot certify {name}: it is a subclass of {base.__name__} that defines {', '.join(added)}, so "
                f"{base.__name__}'s certificate rule need not describe what it computes (a StyleGAN-style "
                "equalised-learning-rate layer, for one, scales its weight inside forward). Register a rule for it: "
                f"critics.register_certificate_rule({cls.__name__}, rule) with rule(module, input_shape) -> its "
                "certified bound (marked user-asserted in the results), or use the plain "
                f"{base.__name__} with the weight it should apply."
            )
        return found, found.user_asserted or user_param
    has_method = callable(getattr(module, "lipschitz_bound", None))
    how = (
        "It has a lipschitz_bound method, but having one is not enough: register it as a rule with "
        f"critics.register_certificate_rule({cls.__name__}, lambda m, shape: m.lipschitz_bound(shape)) "
        "(the certificate is then marked user-asserted)."
        if has_method
        else f"Register one with critics.register_certificate_rule({cls.__name__}, rule) (marked user-asserted), "
        "or build the critic from supported modules (critics.certificate_rules() lists them)."
    )
    raise CertificationError(f"cannot certify {name}: no certificate rule is registered for {cls.__name__}. {how}")
