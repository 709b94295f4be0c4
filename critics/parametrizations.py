"""``torch.nn.utils.parametrize`` constraints that make a layer's weight (semi-)orthogonal.

A constraint is registered on an ordinary ``nn.Linear`` (or any module with a 2-D weight), so the
layer stays a drop-in replacement, its state_dict holds the unconstrained weight under
``parametrizations.weight.original``, and removing the constraint leaves a vanilla layer whose
weight is the constrained one (:func:`remove_bjorck`; :func:`critics.export` does it for a whole
model).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from critics.functional import bjorck_orthonormalize
from critics.ortho import OrthoConfig, resolve
from critics.rules import register_parametrization

__all__ = ["BjorckOrthonormal", "remove_bjorck"]


class BjorckOrthonormal(nn.Module):
    r"""Parametrisation mapping a raw matrix to its Björck-orthonormalised version.

    .. math::

        W = \operatorname{Bj\ddot{o}rck}_K(V), \qquad
        W_0 = V / \bar\sigma(V), \quad W_{k+1} = (1 + \beta) W_k - \beta W_k W_k^\top W_k

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
    ortho : OrthoConfig or None
        Björck iterations, tolerance, step, check period and Gram squarings of the initial
        scaling (which guarantees :math:`\sigma_{\max}(W_0) \le 1`); ``None`` is
        :attr:`OrthoConfig.DEFAULT <critics.ortho.OrthoConfig.DEFAULT>`. Assigning a new one to
        ``.ortho`` invalidates the eval-mode cache.

    References
    ----------
    .. [1] Björck & Bowie, "An iterative algorithm for computing the best estimate of an
       orthogonal matrix", SIAM J. Numer. Anal. 8 (1971).
    .. [2] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    """

    def __init__(self, ortho: OrthoConfig | None = None) -> None:
        super().__init__()
        self.ortho = resolve(type(self).__name__, ortho, OrthoConfig.DEFAULT)
        self.register_buffer("cached_weight", torch.empty(0), persistent=False)
        self._cache_key: tuple | None = None

    def extra_repr(self) -> str:
        o = self.ortho
        return f"iters={o.bjorck_iters}, tol={o.bjorck_tol}, beta={o.bjorck_beta}"

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
        return bjorck_orthonormalize(w, **self.ortho.bjorck_options())

    def forward(self, w: Tensor) -> Tensor:
        if self.training or (torch.is_grad_enabled() and w.requires_grad):
            return self._orthonormalize(w)
        key = (self.ortho, *self._key(w))
        if key != self._cache_key:
            with torch.no_grad():
                self.cached_weight = self._orthonormalize(w.detach())
            self._cache_key = key
        return self.cached_weight


register_parametrization(BjorckOrthonormal, user_asserted=False)


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
