"""The frozen generator: a fixed network plus its latent sampler, always in inference mode."""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from generators.latents import LabelSpec, LatentSpec

__all__ = ["FrozenGenerator"]

BatchNormMode = Literal["eval", "batch"]


class FrozenGenerator(nn.Module):
    """A generator with frozen weights, its latent distribution and its output domain.

    Wraps the network as the submodule ``module`` (so it moves with ``.to()`` and lives inside a
    LightningModule next to the critic). Its parameters have ``requires_grad=False``; forward runs
    under ``torch.no_grad()`` with the network in eval mode whatever ``train()`` is called with.

    Parameters
    ----------
    module : nn.Module
        The network, mapping z of shape ``(N, *latent_shape)`` (and, when ``labels`` is given, class
        labels) to ``(N, *output_shape)``.
    name : str
        Registry name (or ``torchscript:...`` / ``python:...``).
    latent_dim : int
        Number of coordinates of z, ``prod(latent_shape)``.
    latent : {"normal", "uniform", "uniform-symmetric", "truncated-normal"}
        z ~ N(0, I), U[0, 1), U[-1, 1) or N(0, I) truncated to ``[-truncation, truncation]``
        (see :class:`~generators.latents.LatentSpec`).
    output_shape : tuple of int
        Shape of one sample, e.g. ``(3, 32, 32)``.
    output_range : tuple of float
        The declared interval ``(low, high)`` of output values, e.g. ``(-1.0, 1.0)``.
    batchnorm : {"eval", "batch"}
        ``"eval"``: batch norm uses its running statistics (the default). ``"batch"``: batch norm
        normalises with the statistics of each batch, as the published LConvNet sampler did (it never
        called ``eval()``); running statistics are not updated, so the weights stay fixed.
        Batch mode makes each sample depend on its batch; it needs batches of at least 2.
    latent_shape : tuple of int, optional
        Shape of one z, e.g. ``(64, 1, 1)`` for a DCGAN-family network; default ``(latent_dim,)``.
    truncation : float, optional
        ``t`` of ``latent="truncated-normal"``.
    labels : LabelSpec, optional
        For a conditional generator: how its class labels are drawn and passed
        (:class:`~generators.latents.LabelSpec`).
    random_weights : bool
        Whether the network kept its random initialisation (no weights were loaded); recorded only.
    forward_kwargs : dict, optional
        Fixed keyword arguments passed to every forward call beside z (and the labels), e.g.
        ``{"truncation_psi": 0.7}``.

    Attributes
    ----------
    module, name, latent_dim, latent, latent_shape, truncation, labels, output_shape, output_range,
    batchnorm, random_weights, forward_kwargs
        As above.
    latent_spec : LatentSpec
        The latent's shape and distribution.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        latent_dim: int,
        latent: str,
        output_shape: tuple[int, ...],
        output_range: tuple[float, float],
        batchnorm: BatchNormMode = "eval",
        latent_shape: Optional[tuple[int, ...]] = None,
        truncation: Optional[float] = None,
        labels: Optional[LabelSpec] = None,
        random_weights: bool = False,
        forward_kwargs: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        if batchnorm not in ("eval", "batch"):
            raise ValueError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r} (generator {name!r})")
        if latent_shape is None and int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r} (generator {name!r})")
        try:
            spec = LatentSpec(
                tuple(latent_shape) if latent_shape is not None else (int(latent_dim),), latent, truncation
            )
        except ValueError as err:
            raise ValueError(f"{err} (generator {name!r})") from None
        if spec.dim != int(latent_dim):
            raise ValueError(
                f"latent_shape {list(spec.shape)} has {spec.dim} coordinates but latent_dim is {latent_dim} "
                f"(generator {name!r}): give one of them, or values that agree"
            )
        lo, hi = float(output_range[0]), float(output_range[1])
        if not lo < hi:
            raise ValueError(f"output_range must be (low, high) with low < high, got {output_range!r}")
        self.module = module
        self.name = name
        self.latent_spec = spec
        self.latent_dim = spec.dim
        self.latent = spec.distribution
        self.latent_shape = spec.shape
        self.truncation = spec.truncation
        self.labels = labels
        self.random_weights = bool(random_weights)
        self.forward_kwargs = dict(forward_kwargs or {})
        self.output_shape = tuple(int(s) for s in output_shape)
        self.output_range = (lo, hi)
        self.batchnorm = batchnorm
        self._batchnorms = [m for m in module.modules() if isinstance(m, _BatchNorm)]
        if batchnorm == "batch" and not self._batchnorms:
            raise ValueError(
                f"batchnorm='batch' was asked for generator {name!r}, but it has no torch.nn BatchNorm "
                "layers to switch (TorchScript modules cannot be switched; script the network in the "
                "mode you want instead)."
            )
        for p in module.parameters():  # (ScriptModule has no requires_grad_)
            p.requires_grad_(False)
        self._freeze()
        self.training = False

    # -- mode -----------------------------------------------------------------------------------

    def _freeze(self) -> None:
        """Put the network in its frozen mode: eval, or eval with batch-statistics batch norm."""
        self.module.eval()
        if self.batchnorm == "batch":
            for bn in self._batchnorms:
                # training=True selects batch statistics; track_running_stats=False makes
                # F.batch_norm receive no running buffers, so nothing is updated (not even
                # num_batches_tracked).
                bn.training = True
                bn.track_running_stats = False

    def train(self, mode: bool = True) -> FrozenGenerator:
        """Ignore ``mode``: the wrapped network stays frozen (see ``batchnorm``). Returns ``self``."""
        self._freeze()
        self.training = False
        return self

    # -- sampling -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """The device of the network's first parameter or buffer (CPU if it has none)."""
        for t in self.module.parameters():
            return t.device
        for t in self.module.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def latent_width(self) -> int:
        """Coordinates of one flat latent row: ``latent_dim``, plus one for the label of a conditional
        generator."""
        return self.latent_dim + (1 if self.labels is not None else 0)

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> Tensor:
        """Draw latents (and, for a conditional generator, labels).

        Parameters
        ----------
        n : int
            Number of latents.
        generator : torch.Generator, optional
            Random source; the draw happens on its device and is then moved to ``device``, so a
            CPU generator gives the same z whatever the target device. Default: the global RNG of
            ``device``.
        device : str or torch.device, optional
            Where z is returned; default the generator network's device.

        Returns
        -------
        Tensor
            float32 of shape ``(n, *latent_shape)`` drawn as ``latent`` says. For a conditional
            generator one flat row per sample, ``(n, latent_dim + 1)``: z flattened, then the class
            label (an integer stored as a float, exact below 2**24), drawn after z from the same
            ``generator``; :meth:`split_latent` takes it apart.
        """
        device = torch.device(device) if device is not None else self.device
        z = self.latent_spec.sample(n, generator, device)
        if self.labels is None:
            return z
        y = self.labels.sample(n, generator, device)
        return torch.cat([z.flatten(1), y.to(torch.float32)[:, None]], dim=1)

    def split_latent(self, z: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """The network's inputs from latents: z shaped ``(N, *latent_shape)`` and the int64 labels
        ``(N,)`` of a conditional generator (``None`` otherwise).

        Accepts ``(N, *latent_shape)`` or flat ``(N, latent_dim)`` latents (flat ``(N, latent_dim + 1)``
        rows for a conditional generator, as :meth:`sample_latent` makes them).

        Raises
        ------
        ValueError
            Latents of another shape, or labels that are not class indices in ``[0, n_classes)``;
            the message names the shape given and the shapes accepted.
        """
        n = z.shape[0] if z.dim() > 0 else 0
        if self.labels is not None:
            if z.dim() != 2 or z.shape[1] != self.latent_dim + 1:
                raise ValueError(
                    f"generator {self.name!r} is conditional: it takes latent rows of shape (N, {self.latent_dim + 1}) "
                    f"(z of {self.latent_dim} coordinates, then the class label); got {tuple(z.shape)}"
                )
            exact = {torch.bfloat16: 256, torch.float16: 2048}.get(z.dtype)  # largest integer held exactly
            if exact is not None and self.labels.n_classes - 1 > exact:
                raise ValueError(
                    f"generator {self.name!r}: latent rows in {z.dtype} hold class labels exactly only up to {exact}, "
                    f"but there are {self.labels.n_classes} classes; keep the latents in float32 (a '-mixed' "
                    "precision rather than '-true')"
                )
            y = z[:, -1].round()
            if not bool(((y >= 0) & (y < self.labels.n_classes) & (y == z[:, -1])).all()):
                raise ValueError(
                    f"generator {self.name!r}: the last coordinate of each latent row must be a class index in "
                    f"[0, {self.labels.n_classes}); got values such as {z[:, -1][:4].tolist()}"
                )
            return z[:, :-1].reshape(n, *self.latent_shape), y.to(torch.int64)
        if tuple(z.shape[1:]) == self.latent_shape:
            return z, None
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            return z.reshape(n, *self.latent_shape), None
        shapes = f"(N, {', '.join(map(str, self.latent_shape))})"
        if len(self.latent_shape) > 1:
            shapes += f" or flat (N, {self.latent_dim})"
        raise ValueError(f"generator {self.name!r} takes z of shape {shapes}; got {tuple(z.shape)}")

    def _run(self, z: Tensor, y: Optional[Tensor]) -> Tensor:
        if y is None or self.labels is None:
            return self.module(z, **self.forward_kwargs)
        return self.labels.call(self.module, z, y, **self.forward_kwargs)

    def _runs_on(self, shape: tuple[int, ...]) -> bool:
        """Whether the network runs on 2 probe latents of one-sample ``shape`` (RNG state kept)."""
        z = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0)).to(self.device)
        y = None if self.labels is None else torch.zeros(2, dtype=torch.int64, device=self.device)
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                self._run(z, y)
            return True
        except torch.OutOfMemoryError:
            raise
        except Exception:
            return False

    def _refused(self, z: Tensor, err: Exception) -> ValueError:
        """The error for a network that raised on latents ``z``: the shape it refused, what it said,
        and any latent shape it does run on (probed on 2 latents: flat, ``(d, 1, 1)``, and the
        input size of its first layer)."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        head = (
            f"generator {self.name!r} refused latents of shape {tuple(z.shape)} (latent_shape "
            f"{list(self.latent_shape)}, latent_dim {self.latent_dim}): {type(err).__name__}: {first}."
        )
        candidates: list[tuple[int, ...]] = [(self.latent_dim,), (self.latent_dim, 1, 1)]
        layer = next((m for m in self.module.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))), None)
        if isinstance(layer, nn.Linear):
            candidates.append((layer.in_features,))
        elif layer is not None:
            candidates.append((layer.in_channels, 1, 1))
        tried = [c for c in dict.fromkeys(candidates) if c != self.latent_shape]
        works = [c for c in tried if self._runs_on(c)]
        if works:
            c = works[0]
            dim = "" if math.prod(c) == self.latent_dim else f" ({math.prod(c)} coordinates, not {self.latent_dim})"
            return ValueError(
                f"{head} It runs on latents of shape (N, {', '.join(map(str, c))}): set latent_shape: {list(c)}{dim}."
            )
        if self.labels is None and isinstance(err, TypeError) and "argument" in str(err):
            return ValueError(
                f"{head} Its forward takes more arguments than z: for class labels (a conditional generator) give "
                "n_classes and labels (uniform, a class or a list of classes), and label_arg if it takes them by name; "
                "for fixed arguments, forward_kwargs (e.g. {truncation_psi: 0.7})."
            )
        if self._runs_on(self.latent_shape):
            return ValueError(f"{head} It runs on probe latents of that shape, so the failure depends on their values.")
        listed = ", ".join(f"(N, {', '.join(map(str, c))})" for c in tried)
        return ValueError(
            f"{head} It did not run on latents of shape {listed} either: check latent_dim and latent_shape "
            "against the network's first layer."
        )

    def forward(self, z: Tensor) -> Tensor:
        """Generate samples from latents, without gradients.

        Parameters
        ----------
        z : Tensor
            Shape ``(N, *latent_shape)`` or ``(N, latent_dim)`` (rows of ``latent_dim + 1`` for a
            conditional generator, see :meth:`sample_latent`); moved to the network's device as
            float32.

        Returns
        -------
        Tensor
            Shape ``(N, *output_shape)``, values in ``output_range`` (as declared for the network).

        Raises
        ------
        ValueError
            Latents of the wrong shape; a network that raises on them (the message names the shape
            it refused and, when one works, the latent shape it runs on); an output of another shape
            than ``output_shape``.
        """
        z, y = self.split_latent(z)
        self._freeze()
        z = z.to(self.device, torch.float32)
        y = None if y is None else y.to(self.device)
        with torch.no_grad():
            try:
                x = self._run(z, y)
            except torch.OutOfMemoryError:
                raise
            except Exception as err:  # the network refused the latents: say which shape, and what it takes
                raise self._refused(z, err) from err
        if tuple(x.shape[1:]) != self.output_shape or x.shape[0] != z.shape[0]:
            raise ValueError(
                f"generator {self.name!r} returned shape {tuple(x.shape)} for {z.shape[0]} latents; "
                f"its declared output_shape is {self.output_shape}, so ({z.shape[0]}, "
                f"{', '.join(map(str, self.output_shape))}) was expected."
            )
        return x

    def sample(self, n: int, seed: int | None = None, device: str | torch.device | None = None) -> Tensor:
        """Draw ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        seed : int, optional
            Seeds a CPU ``torch.Generator`` for the latents, so the same seed gives the same samples
            on every device (up to the network's floating-point differences). Default: global RNG.
        device : str or torch.device, optional
            Where the samples are returned; the network runs on its own device.

        Returns
        -------
        Tensor
            Shape ``(n, *output_shape)``, float32, in ``output_range``.
        """
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        x = self(self.sample_latent(n, generator=gen))
        return x if device is None else x.to(device)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, latent={self.latent_spec.describe()!r}, "
            + (f"labels={self.labels.describe()!r}, " if self.labels is not None else "")
            + f"output_shape={self.output_shape}, output_range={self.output_range}, batchnorm={self.batchnorm!r}"
            + (f", forward_kwargs={self.forward_kwargs!r}" if self.forward_kwargs else "")
            + (", random_weights=True" if self.random_weights else "")
        )
