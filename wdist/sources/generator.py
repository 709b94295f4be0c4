"""A frozen GAN generator as a source: latents on the CPU, images on the training device.

The generator comes from ``generators.load`` (registered names such as ``digits/wgan-gp-8`` or
``lconvnet/wgan-gp-32``, a TorchScript file, or ``module.path:callable``). Its declared output range
is mapped affinely onto this source's ``range`` (the same domain as the data it is compared with),
then the images are resized if asked, exactly as data sources are.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from generators import load
from wdist.sources.base import LatentSource, SourceError
from wdist.sources.transforms import check_range, check_size

__all__ = ["Generator", "RangeMapped"]


class RangeMapped(nn.Module):
    r"""A frozen generator followed by the affine range map and an optional resize.

    .. math:: x = \mathrm{resize}\Big(\frac{G(z) - a}{b - a} (d - c) + c\Big), \text{ clamped to } [c, d]

    with :math:`[a, b]` the generator's declared output range and :math:`[c, d]` the target
    range. The clamp keeps every sample in the domain (a generator that leaves its declared range
    is clipped, not trusted).

    The wrapped generator keeps its own mode: ``train()`` on this module (e.g. from the
    LightningModule that registers it) does not switch the generator's batch norm to training.

    Parameters
    ----------
    generator : nn.Module
        Maps ``(N, latent_dim)`` latents to ``(N, C, H, W)`` images; frozen.
    output_range : (float, float)
        The generator's declared output range ``[a, b]``.
    target_range : (float, float)
        The domain ``[c, d]``.
    resize : int, optional
        Bilinear (antialiased) resize to ``resize`` x ``resize``.
    """

    def __init__(
        self,
        generator: nn.Module,
        output_range: tuple[float, float],
        target_range: tuple[float, float],
        resize: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.output_range = check_range("output_range", output_range)
        self.target_range = check_range("range", target_range)
        self.resize = check_size("resize", resize)
        for p in self.generator.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "RangeMapped":
        # Do not recurse: the generator's batch-norm mode is fixed when it is loaded.
        self.training = mode
        return self

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        x = self.generator(z).to(torch.float32)
        (a, b), (c, d) = self.output_range, self.target_range
        if (a, b) != (c, d):
            x = (x - a) / (b - a) * (d - c) + c
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            if x.ndim != 4:
                raise SourceError(f"resize needs images (N, C, H, W) from the generator, got {tuple(x.shape)}")
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True)
        return x.clamp(c, d)

    def extra_repr(self) -> str:
        return f"output_range={self.output_range}, target_range={self.target_range}, resize={self.resize}"


class Generator(LatentSource):
    """Samples of a frozen generator, mapped into the domain ``range``.

    Parameters
    ----------
    name : str
        A registered generator name (see ``generators.available()``), or what ``generators.load``
        accepts for a user's own generator.
    checkpoint : str, optional
        Path or URL of the weights; the registered default when ``None``.
    sha256 : str, optional
        Expected SHA-256 of the checkpoint file.
    batchnorm : {"eval", "batch"}
        ``eval``: batch norm with running statistics (default); ``batch``: batch statistics, as
        some published samplers did (to reproduce their numbers).
    range : (float, float)
        The domain the samples are mapped onto (the data's range, ``(-1, 1)`` for images).
    resize : int, optional
        Resize the images to ``resize`` x ``resize`` (bilinear, antialiased).
    latent_dim, latent, output_shape, output_range
        Override the generator's declared latent size, latent distribution (``normal`` or
        ``uniform``), output shape and output range (needed for generators that do not declare
        them).

    Attributes
    ----------
    frozen : nn.Module
        The loaded ``FrozenGenerator``.
    """

    def __init__(
        self,
        name: str,
        checkpoint: Optional[str] = None,
        sha256: Optional[str] = None,
        batchnorm: Literal["eval", "batch"] = "eval",
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        latent_dim: Optional[PositiveInt] = None,
        latent: Optional[Literal["normal", "uniform"]] = None,
        output_shape: Optional[list[int]] = None,
        output_range: Optional[tuple[float, float]] = None,
    ) -> None:
        if batchnorm not in ("eval", "batch"):
            raise SourceError(f"batchnorm must be 'eval' or 'batch', got batchnorm={batchnorm!r}")
        self.name = name
        self.checkpoint = checkpoint
        self.domain = check_range("range", range)
        self.resize = check_size("resize", resize)
        try:
            self.frozen = load(
                name,
                checkpoint,
                sha256=sha256,
                device="cpu",
                batchnorm=batchnorm,
                latent_dim=latent_dim,
                latent=latent,
                output_shape=None if output_shape is None else tuple(int(s) for s in output_shape),
                output_range=None if output_range is None else check_range("output_range", output_range),
            )
        except SourceError:
            raise
        except ValueError as err:  # generators.GeneratorLoadError and the FrozenGenerator checks
            raise SourceError(f"cannot load generator {name!r}: {err}") from err
        self.batchnorm = batchnorm
        self.latent_dim = int(self.frozen.latent_dim)
        self.latent = str(self.frozen.latent)
        out_range = getattr(self.frozen, "output_range", None)
        if out_range is None:
            raise SourceError(f"generator {name!r} does not declare its output range; set output_range")
        gen_shape = tuple(int(s) for s in self.frozen.output_shape)
        if self.resize is not None:
            if len(gen_shape) != 3:
                raise SourceError(f"resize needs image outputs (C, H, W); generator {name!r} outputs {gen_shape}")
            self.shape = (gen_shape[0], self.resize, self.resize)
        else:
            self.shape = gen_shape
        self.output_range = check_range("output_range", out_range)
        self._module = RangeMapped(self.frozen, self.output_range, self.domain, self.resize)

    @property
    def module(self) -> nn.Module:
        """The frozen generator with the range map (and resize): ``(N, latent_dim) -> (N, *shape)``."""
        return self._module

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` latent vectors on the CPU, shape ``(n, latent_dim)``, deterministic in ``generator``."""
        z = self.frozen.sample_latent(n, generator=generator, device="cpu")
        return z.to("cpu")

    def describe(self) -> str:
        lo, hi = self.domain
        shape = "x".join(str(s) for s in self.shape)
        ckpt = f", checkpoint {self.checkpoint}" if self.checkpoint else ""
        bn = ", batch-norm on batch statistics" if self.batchnorm == "batch" else ""
        return (
            f"generator {self.name}{ckpt} ({self.latent} latent of {self.latent_dim}, "
            f"{shape} in [{lo:g}, {hi:g}] from [{self.output_range[0]:g}, {self.output_range[1]:g}]{bn})"
        )
