"""What a generator is fed: the latent z (its shape and distribution) and, for a conditional
generator, the class labels passed beside it.

* :class:`LatentSpec`: z of any shape (``(64,)`` for an MLP, ``(64, 1, 1)`` for a DCGAN-family
  network) drawn from N(0, I), U[0, 1), U[-1, 1) or N(0, I) truncated to ``[-t, t]`` per
  coordinate (the "truncation trick").
* :class:`LabelSpec`: class labels y for a generator whose forward is ``G(z, y)`` (or
  ``G(z, **{arg: y})``): uniform over ``n_classes``, one fixed class, or uniform over a list of
  classes; passed as indices or one-hot vectors.

Both draw from a given ``torch.Generator``, so the same seed gives the same latents on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LATENTS", "LABEL_FORMATS", "Labels", "LatentSpec", "LabelSpec"]

#: Latent distributions: N(0, I), U[0, 1), U[-1, 1), N(0, I) truncated to [-t, t].
LATENTS: tuple[str, ...] = ("normal", "uniform", "uniform-symmetric", "truncated-normal")
#: How labels reach the generator: class indices (int64) or one-hot vectors (float32).
LABEL_FORMATS: tuple[str, ...] = ("index", "one-hot")

_LAW = {
    "normal": "N(0, I)",
    "uniform": "U[0, 1)",
    "uniform-symmetric": "U[-1, 1)",
}


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class LatentSpec:
    """The latent z of one sample: its shape and the distribution of its coordinates.

    Parameters
    ----------
    shape : tuple of int
        Shape of one latent, e.g. ``(128,)`` or ``(64, 1, 1)``; ``dim = prod(shape)``.
    distribution : {"normal", "uniform", "uniform-symmetric", "truncated-normal"}
        i.i.d. coordinates from N(0, 1), U[0, 1), U[-1, 1), or N(0, 1) conditioned on
        ``|z_i| <= truncation``.
    truncation : float, optional
        ``t > 0``, required by (and only allowed with) ``truncated-normal``.

    Raises
    ------
    ValueError
        An unknown distribution, a shape with a non-positive entry, or a truncation missing,
        non-positive or given with another distribution; the message names the value.
    """

    shape: tuple[int, ...]
    distribution: str = "normal"
    truncation: Optional[float] = None

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"latent_shape must be a non-empty list of positive integers, got {list(self.shape)!r}")
        object.__setattr__(self, "shape", shape)
        if self.distribution not in LATENTS:
            raise ValueError(f"latent must be one of {', '.join(LATENTS)}; got {self.distribution!r}")
        if self.distribution == "truncated-normal":
            if self.truncation is None or not float(self.truncation) > 0 or not math.isfinite(float(self.truncation)):
                raise ValueError(
                    f"latent 'truncated-normal' needs truncation t > 0 (z_i ~ N(0, 1) conditioned on |z_i| <= t, "
                    f"e.g. truncation: 0.5); got truncation={self.truncation!r}"
                )
            object.__setattr__(self, "truncation", float(self.truncation))
        elif self.truncation is not None:
            raise ValueError(
                f"truncation={self.truncation!r} was given with latent {self.distribution!r}; truncation applies "
                "only to latent 'truncated-normal'"
            )

    @property
    def dim(self) -> int:
        """Number of coordinates of one latent, ``prod(shape)``."""
        return math.prod(self.shape)

    def sample(
        self, n: int, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None
    ) -> Tensor:
        """``n`` latents, float32 of shape ``(n, *shape)``.

        Drawn on ``generator``'s device when one is given (then moved to ``device``), else from the
        global RNG of ``device`` (default CPU). Truncated normal uses the inverse-CDF method of
        :func:`torch.nn.init.trunc_normal_`, one uniform draw per coordinate.
        """
        target = torch.device(device) if device is not None else torch.device("cpu")
        where = generator.device if generator is not None else target
        size = (int(n), *self.shape)
        if self.distribution == "normal":
            z = torch.randn(size, generator=generator, device=where, dtype=torch.float32)
        elif self.distribution == "uniform":
            z = torch.rand(size, generator=generator, device=where, dtype=torch.float32)
        elif self.distribution == "uniform-symmetric":
            z = 2.0 * torch.rand(size, generator=generator, device=where, dtype=torch.float32) - 1.0
        else:
            t = float(self.truncation)  # type: ignore[arg-type]
            z = nn.init.trunc_normal_(
                torch.empty(size, device=where, dtype=torch.float32), 0.0, 1.0, -t, t, generator=generator
            )
        return z.to(target)

    def describe(self) -> str:
        """E.g. ``"N(0, I) latent of 64x1x1"``, ``"N(0, I) truncated to [-0.5, 0.5] latent of 128"``."""
        if self.distribution == "truncated-normal":
            law = f"N(0, I) truncated to [-{self.truncation:g}, {self.truncation:g}]"
        else:
            law = _LAW[self.distribution]
        return f"{law} latent of {_fmt(self.shape)}"

    def record(self) -> dict[str, Any]:
        """The spec as JSON-ready values: ``latent``, ``latent_shape``, ``latent_dim``, ``truncation``."""
        return {
            "latent": self.distribution,
            "latent_shape": list(self.shape),
            "latent_dim": self.dim,
            "truncation": self.truncation,
        }


#: What ``labels`` may be: ``"uniform"``, one class index, or a tuple of class indices.
Labels = Union[str, int, tuple[int, ...]]


@dataclass(frozen=True)
class LabelSpec:
    """Class labels for a conditional generator, drawn per sample.

    Parameters
    ----------
    n_classes : int
        Number of classes K; labels lie in ``{0, ..., K-1}``.
    labels : "uniform", int or tuple of int
        ``"uniform"``: y ~ U{0, ..., K-1}; an int c: y = c for every sample; a tuple of classes:
        y uniform over its entries (repeat a class to weight it).
    arg : str, optional
        Keyword under which the generator's forward takes the labels (``G(z, **{arg: y})``);
        ``None``: the second positional argument (``G(z, y)``).
    format : {"index", "one-hot"}
        ``index``: y as int64 of shape ``(N,)``; ``one-hot``: float32 of shape ``(N, K)``.

    Raises
    ------
    ValueError
        ``n_classes < 1``, a label outside ``[0, n_classes)``, an empty list, an unknown
        ``labels`` word or ``format``; the message names the value.
    """

    n_classes: int
    labels: Labels = "uniform"
    arg: Optional[str] = None
    format: str = "index"

    def __post_init__(self) -> None:
        k = self.n_classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"n_classes must be a positive integer (the number of classes), got {k!r}")
        labels = self.labels
        if isinstance(labels, str):
            if labels != "uniform":
                raise ValueError(
                    f"labels must be 'uniform', a class index or a list of class indices in [0, {k}); got {labels!r}"
                )
        else:
            values = (labels,) if isinstance(labels, int) else tuple(labels)
            if not values or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k for c in values):
                raise ValueError(
                    f"labels must be 'uniform', a class index or a non-empty list of class indices in [0, {k}) "
                    f"(n_classes={k}); got {labels!r}"
                )
            object.__setattr__(
                self, "labels", int(labels) if isinstance(labels, int) else tuple(int(c) for c in values)
            )
        if self.format not in LABEL_FORMATS:
            raise ValueError(f"label_format must be one of {', '.join(LABEL_FORMATS)}; got {self.format!r}")

    def sample(
        self, n: int, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None
    ) -> Tensor:
        """``n`` class indices, int64 of shape ``(n,)``, drawn as :attr:`labels` says."""
        target = torch.device(device) if device is not None else torch.device("cpu")
        where = generator.device if generator is not None else target
        if isinstance(self.labels, int):
            return torch.full((int(n),), self.labels, dtype=torch.int64, device=target)
        choices = range(self.n_classes) if self.labels == "uniform" else self.labels
        pick = torch.randint(len(choices), (int(n),), generator=generator, device=where)
        return torch.as_tensor(list(choices), dtype=torch.int64, device=where)[pick].to(target)

    def call(self, module: nn.Module, z: Tensor, y: Tensor, **kwargs: Any) -> Tensor:
        """``module(z, y, **kwargs)`` (or with ``y`` under :attr:`arg`), ``y`` in :attr:`format`."""
        given = F.one_hot(y, self.n_classes).to(torch.float32) if self.format == "one-hot" else y
        return module(z, **{self.arg: given}, **kwargs) if self.arg else module(z, given, **kwargs)

    def describe(self) -> str:
        """E.g. ``"labels uniform over 10 classes"``, ``"label 3 of 10"``."""
        if self.labels == "uniform":
            what = f"labels uniform over {self.n_classes} classes"
        elif isinstance(self.labels, int):
            what = f"label {self.labels} of {self.n_classes} classes"
        else:
            what = f"labels uniform over classes {list(self.labels)} of {self.n_classes}"
        how = f" as {self.arg}=" if self.arg else ""
        return what + (f"{how} ({self.format})" if self.format != "index" or self.arg else "")

    def record(self) -> dict[str, Any]:
        """JSON-ready values: ``n_classes``, ``labels``, ``label_arg``, ``label_format``."""
        labels = list(self.labels) if isinstance(self.labels, tuple) else self.labels
        return {"n_classes": self.n_classes, "labels": labels, "label_arg": self.arg, "label_format": self.format}
