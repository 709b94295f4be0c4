"""``torch.nn.utils.parametrize`` constraints that make a layer's weight (semi-)orthogonal.

A constraint is registered on an ordinary ``nn.Linear`` (or any module with a 2-D weight), so the
layer stays a drop-in replacement, its state_dict holds the unconstrained weight under
``parametrizations.weight.original``, and removing the constraint leaves a vanilla layer whose
weight is the constrained one (:func:`remove_bjorck`, :func:`vanilla_export`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from critics.functional import bjorck_orthonormalize

__all__ = [
    "BjorckOrthonormal",
    "register_bjorck",
    "remove_bjorck",
    "vanilla_export",
]


class BjorckOrthonormal(nn.Module):
    r"""Parametrisation mapping a raw matrix to its Björck-orthonormalised version.

    .. math::

        W = \operatorname{Bj\ddot{o}rck}_K(V), \qquad
        W_0 = V / \bar\sigma(V), \quad W_{k+1} = \tfrac{3}{2} W_k - \tfrac{1}{2} W_k W_k^\top W_k

    (:func:`critics.functional.bjorck_orthonormalize`): the orthogonal polar factor of ``V``,
    semi-orthogonal when ``V`` is rectangular (orthonormal rows if wide, columns if tall).

    In training mode the iteration runs on every access of the weight and is differentiated
    through. In eval mode the result is cached (a non-persistent buffer) and reused until the raw
    weight changes (its autograd version counter, storage, shape, dtype or device) or ``train()``
    is called. The cache is bypassed whenever gradients with respect to the raw weight are needed
    (grad mode on and the weight requires grad), so eval-mode training still gets parameter
    gradients; a cached result is bit-identical to a recomputed one (the iteration is
    deterministic). In-place edits through ``weight.data`` bypass the version counter: call
    :meth:`clear_cache` (or ``train()``) after them.

    Lipschitz bound: not a layer itself; the layer it constrains has L2 norm
    :math:`\sigma_{\max}(W) = 1 + O(\text{tol})`, certified from the weight actually used.

    Shape
    -----
    (m, n) -> (m, n)

    Parameters
    ----------
    iters : int
        Maximum number of Björck iterations.
    tol : float or None
        Early stop once :math:`\max_{ij} |W^\top W - I|_{ij} < tol`; ``None`` always runs ``iters``.
    beta : float
        Björck step (0.5 is the classical iteration).
    check_every : int
        Convergence check period (each check synchronises the device).
    gram_iters : int
        Gram-iteration squarings for the initial scaling, which guarantees
        :math:`\sigma_{\max}(W_0) \le 1`.

    References
    ----------
    .. [1] Björck & Bowie, "An iterative algorithm for computing the best estimate of an
       orthogonal matrix", SIAM J. Numer. Anal. 8 (1971).
    .. [2] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    """

    def __init__(
        self,
        iters: int = 30,
        tol: float | None = 1e-6,
        beta: float = 0.5,
        check_every: int = 4,
        gram_iters: int = 3,
    ) -> None:
        super().__init__()
        if iters < 1:
            raise ValueError(f"iters must be >= 1; got {iters}")
        self.iters = int(iters)
        self.tol = tol
        self.beta = float(beta)
        self.check_every = int(check_every)
        self.gram_iters = int(gram_iters)
        self.register_buffer("cached_weight", torch.empty(0), persistent=False)
        self._cache_key: tuple | None = None

    def extra_repr(self) -> str:
        return f"iters={self.iters}, tol={self.tol}, beta={self.beta}"

    @staticmethod
    def _key(w: Tensor) -> tuple:
        return (w._version, w.data_ptr(), tuple(w.shape), w.dtype, w.device)

    def clear_cache(self) -> None:
        """Forget the eval-mode cache (the next access recomputes)."""
        self._cache_key = None
        self.cached_weight = torch.empty(0, dtype=self.cached_weight.dtype, device=self.cached_weight.device)

    def train(self, mode: bool = True) -> "BjorckOrthonormal":
        self.clear_cache()
        return super().train(mode)

    def _orthonormalize(self, w: Tensor) -> Tensor:
        if w.ndim != 2:
            raise ValueError(f"BjorckOrthonormal expects a 2-D weight; got shape {tuple(w.shape)}")
        return bjorck_orthonormalize(
            w, iters=self.iters, tol=self.tol, check_every=self.check_every, beta=self.beta,
            gram_iters=self.gram_iters,
        )

    def forward(self, w: Tensor) -> Tensor:
        if self.training or (torch.is_grad_enabled() and w.requires_grad):
            return self._orthonormalize(w)
        key = self._key(w)
        if key != self._cache_key:
            with torch.no_grad():
                self.cached_weight = self._orthonormalize(w.detach())
            self._cache_key = key
        return self.cached_weight


def register_bjorck(module: nn.Module, name: str = "weight", **options: object) -> nn.Module:
    """Register :class:`BjorckOrthonormal` on ``module.<name>``; returns the module."""
    parametrize.register_parametrization(module, name, BjorckOrthonormal(**options))  # type: ignore[arg-type]
    return module


def remove_bjorck(module: nn.Module, name: str = "weight") -> nn.Module:
    """Remove the parametrisation, leaving the orthonormalised weight as a plain parameter.

    Uses ``parametrize.remove_parametrizations(..., leave_parametrized=True)``, so the module
    computes exactly what it computed before (up to the last bit). Returns the module.

    Safe on deep copies: ``copy.deepcopy`` of a parametrised module shares the class that
    ``torch.nn.utils.parametrize`` injected with the original, and removing a parametrisation
    deletes its property from that class (which would break the original). The module is first
    given a class of its own.
    """
    if parametrize.is_parametrized(module, name):
        cls = type(module)
        module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return module


def vanilla_export(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every Björck constraint removed and every
    :class:`~critics.layers.BjorckLinear` replaced by a plain ``nn.Linear`` with the same
    (orthonormalised) weight and bias. The original model is not modified.
    """
    from critics.layers.bjorck import BjorckLinear  # local: layers import this module

    model = copy.deepcopy(model)

    def strip(mod: nn.Module) -> nn.Module:
        if isinstance(mod, BjorckLinear):
            plain = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None,
                              device=mod.weight.device, dtype=mod.weight.dtype)
            with torch.no_grad():
                plain.weight.copy_(mod.weight)
                if mod.bias is not None:
                    plain.bias.copy_(mod.bias)
            plain.train(mod.training)
            return plain
        if parametrize.is_parametrized(mod):
            for tensor_name in list(mod.parametrizations.keys()):  # type: ignore[union-attr]
                if any(isinstance(p, BjorckOrthonormal) for p in mod.parametrizations[tensor_name]):  # type: ignore[index]
                    remove_bjorck(mod, tensor_name)
        for child_name, child in mod.named_children():
            if child_name != "parametrizations":
                setattr(mod, child_name, strip(child))
        return mod

    return strip(model)
