"""The frozen generator: a fixed network plus its latent sampler, always in inference mode."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

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
        The network, mapping z of shape ``(N, latent_dim)`` to ``(N, *output_shape)``.
    name : str
        Registry name (or ``torchscript:...`` / ``python:...``).
    latent_dim : int
        Size of z.
    latent : {"normal", "uniform"}
        z ~ N(0, I) or z ~ U[0, 1)^latent_dim.
    output_shape : tuple of int
        Shape of one sample, e.g. ``(3, 32, 32)``.
    output_range : tuple of float
        The declared interval ``(low, high)`` of output values, e.g. ``(-1.0, 1.0)``.
    batchnorm : {"eval", "batch"}
        ``"eval"``: batch norm uses its running statistics (the default). ``"batch"``: batch norm
        normalises with the statistics of each batch, as the published LConvNet sampler did (it never
        called ``eval()``); running statistics are not updated, so the weights stay fixed.
        Batch mode makes each sample depend on its batch; it needs batches of at least 2.

    Attributes
    ----------
    module, name, latent_dim, latent, output_shape, output_range, batchnorm
        As above.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        name: str,
        latent_dim: int,
        latent: Literal["normal", "uniform"],
        output_shape: tuple[int, ...],
        output_range: tuple[float, float],
        batchnorm: BatchNormMode = "eval",
    ) -> None:
        super().__init__()
        if latent not in ("normal", "uniform"):
            raise ValueError(f"latent must be 'normal' or 'uniform', got {latent!r} (generator {name!r})")
        if batchnorm not in ("eval", "batch"):
            raise ValueError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r} (generator {name!r})")
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r} (generator {name!r})")
        lo, hi = float(output_range[0]), float(output_range[1])
        if not lo < hi:
            raise ValueError(f"output_range must be (low, high) with low < high, got {output_range!r}")
        self.module = module
        self.name = name
        self.latent_dim = int(latent_dim)
        self.latent = latent
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

    def sample_latent(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> Tensor:
        """Draw latent vectors.

        Parameters
        ----------
        n : int
            Number of vectors.
        generator : torch.Generator, optional
            Random source; the draw happens on its device and is then moved to ``device``, so a
            CPU generator gives the same z whatever the target device. Default: the global RNG of
            ``device``.
        device : str or torch.device, optional
            Where z is returned; default the generator network's device.

        Returns
        -------
        Tensor
            float32 of shape ``(n, latent_dim)``: N(0, I) or U[0, 1) as ``latent`` says.
        """
        device = torch.device(device) if device is not None else self.device
        draw = torch.randn if self.latent == "normal" else torch.rand
        if generator is None:
            return draw(n, self.latent_dim, device=device, dtype=torch.float32)
        z = draw(n, self.latent_dim, generator=generator, device=generator.device, dtype=torch.float32)
        return z.to(device)

    def forward(self, z: Tensor) -> Tensor:
        """Generate samples from latents, without gradients.

        Parameters
        ----------
        z : Tensor
            Shape ``(N, latent_dim)``; moved to the network's device as float32.

        Returns
        -------
        Tensor
            Shape ``(N, *output_shape)``, values in ``output_range`` (as declared for the network).
        """
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"generator {self.name!r} takes z of shape (N, {self.latent_dim}); got {tuple(z.shape)}")
        self._freeze()
        with torch.no_grad():
            x = self.module(z.to(self.device, torch.float32))
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
            f"name={self.name!r}, latent_dim={self.latent_dim}, latent={self.latent!r}, "
            f"output_shape={self.output_shape}, output_range={self.output_range}, batchnorm={self.batchnorm!r}"
        )
