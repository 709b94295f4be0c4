"""A frozen GAN generator as a source: latents on the CPU, images on the training device.

The generator comes from ``generators.load`` (registered names such as ``digits/wgan-gp-8`` or
``lconvnet/wgan-gp-32``, a TorchScript file, or ``module.path:callable``). Its declared output range
is mapped affinely onto this source's ``range`` (the same domain as the data it is compared with),
then the images are resized if asked, exactly as data sources are.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from generators import MissingWeightsError, load
from wdist.sources.base import LatentSource, SourceError
from wdist.sources.ranges import RangeTally
from wdist.sources.registry import register_source
from wdist.sources.transforms import check_range, check_size

__all__ = ["Generator", "RangeMapped"]


class RangeMapped(nn.Module):
    r"""A frozen generator followed by the affine range map and an optional resize.

    .. math:: x = \mathrm{resize}\Big(\frac{G(z) - a}{b - a} (d - c) + c\Big), \text{ clamped to } [c, d]

    with :math:`[a, b]` the generator's declared output range and :math:`[c, d]` the target
    range. The clamp keeps every sample in the domain, and it is never silent: every forward adds
    its batch to :attr:`tally` (values of :math:`G(z)` outside :math:`[a, b]`, extremes, distance
    the clamp moved each sample; :mod:`wdist.sources.ranges`), which a run reports and checks
    against :data:`~wdist.sources.ranges.OUT_OF_RANGE_LIMIT`.

    The wrapped generator keeps its own mode: ``train()`` on this module (e.g. from the
    LightningModule that registers it) does not switch the generator's batch norm to training.

    Parameters
    ----------
    generator : nn.Module
        Maps latents (as its ``sample_latent`` draws them) to ``(N, C, H, W)`` images; frozen.
    output_range : (float, float)
        The generator's declared output range ``[a, b]``.
    target_range : (float, float)
        The domain ``[c, d]``.
    resize : int, optional
        Bilinear (antialiased) resize to ``resize`` x ``resize``.

    Attributes
    ----------
    tally : RangeTally
        Everything decoded so far, counted against ``output_range`` (callers ``take()`` it).
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
        self.tally = RangeTally(self.output_range)
        for p in self.generator.parameters():
            p.requires_grad_(False)

    @property
    def name(self) -> str:
        """The generator's name (its registry name, or its class's)."""
        return str(getattr(self.generator, "name", type(self.generator).__name__))

    def train(self, mode: bool = True) -> "RangeMapped":
        # Do not recurse: the generator's batch-norm mode is fixed when it is loaded.
        self.training = mode
        return self

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        raw = self.generator(z).to(torch.float32)
        (a, b), (c, d) = self.output_range, self.target_range
        x = (raw - a) / (b - a) * (d - c) + c if (a, b) != (c, d) else raw
        if self.resize is not None and tuple(x.shape[-2:]) != (self.resize, self.resize):
            if x.ndim != 4:
                raise SourceError(f"resize needs images (N, C, H, W) from the generator, got {tuple(x.shape)}")
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True)
        clamped = x.clamp(c, d)
        self.tally.update(raw, (x - clamped).flatten(1).norm(dim=1))
        return clamped

    def extra_repr(self) -> str:
        return f"output_range={self.output_range}, target_range={self.target_range}, resize={self.resize}"


@register_source
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
        The generator's latent size, latent distribution, output shape and output range: needed for
        a user's own generator; for a registered one fixed by its architecture (a value that
        differs is an error, except ``truncated-normal`` for a normal latent). ``latent``:
        ``normal`` N(0, I), ``uniform`` U[0, 1), ``uniform-symmetric`` U[-1, 1) or
        ``truncated-normal`` (with ``truncation``).
    latent_shape : list of int, optional
        Shape of one z, e.g. ``[64, 1, 1]`` for a DCGAN-family generator (instead of, or agreeing
        with, ``latent_dim``).
    truncation : float, optional
        ``t`` of ``latent: truncated-normal``: each coordinate N(0, 1) conditioned on ``|z_i| <= t``.
    n_classes : int, optional
        For a conditional generator (forward ``G(z, y)``): the number of classes of its labels y.
    labels : "uniform", int or list of int, optional
        How y is drawn for each sample: ``uniform`` over the classes (the default with
        ``n_classes``), one class index, or uniformly over a list of class indices.
    label_arg : str, optional
        The keyword under which forward takes y; default its second positional argument.
    label_format : {"index", "one-hot"}
        y as int64 class indices or as float one-hot vectors of ``n_classes``.
    forward_kwargs : dict, optional
        Fixed keyword arguments of every forward call, for a generator whose forward takes more than
        z and labels (e.g. ``{truncation_psi: 0.7}``).
    random_weights : bool
        Estimate against a registered architecture with random weights, on purpose: without it a
        registered generator without checkpoint is an error. The result says so.

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
        latent: Optional[Literal["normal", "uniform", "uniform-symmetric", "truncated-normal"]] = None,
        output_shape: Optional[list[int]] = None,
        output_range: Optional[tuple[float, float]] = None,
        latent_shape: Optional[list[PositiveInt]] = None,
        truncation: Optional[PositiveFloat] = None,
        n_classes: Optional[PositiveInt] = None,
        labels: Union[Literal["uniform"], NonNegativeInt, list[NonNegativeInt], None] = None,
        label_arg: Optional[str] = None,
        label_format: Literal["index", "one-hot"] = "index",
        random_weights: bool = False,
        forward_kwargs: Optional[dict[str, Any]] = None,
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
                latent_shape=latent_shape,
                truncation=truncation,
                n_classes=n_classes,
                labels=labels,
                label_arg=label_arg,
                label_format=label_format,
                random_weights=random_weights,
                forward_kwargs=forward_kwargs,
            )
        except SourceError:
            raise
        except MissingWeightsError as err:
            raise SourceError(
                f"generator {name!r} has no checkpoint: it is a registered architecture without bundled weights, so "
                "it would run with RANDOM weights and its samples would be noise. Give its weights file as "
                "init_args.checkpoint: PATH in the config (on the command line: --q.init_args.checkpoint PATH; "
                f"published weights: {err.url or 'n/a'}), or set init_args.random_weights: true to estimate against "
                "the randomly initialised network on purpose."
            ) from None
        except ValueError as err:  # generators.GeneratorLoadError and the FrozenGenerator checks
            raise SourceError(f"cannot load generator {name!r}: {err}") from err
        self.batchnorm = batchnorm
        self.latent_dim = int(self.frozen.latent_dim)
        self.latent = str(self.frozen.latent)
        self.random_weights = bool(self.frozen.random_weights)
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
        """The frozen generator with the range map (and resize): latents (:meth:`sample_latent`) ->
        ``(N, *shape)``."""
        return self._module

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` latents on the CPU, deterministic in ``generator``: shape ``(n, *latent_shape)``, or
        ``(n, latent_dim + 1)`` rows ending with the class label for a conditional generator
        (``FrozenGenerator.sample_latent``)."""
        z = self.frozen.sample_latent(n, generator=generator, device="cpu")
        return z.to("cpu")

    def describe(self) -> str:
        lo, hi = self.domain
        shape = "x".join(str(s) for s in self.shape)
        ckpt = f", checkpoint {self.checkpoint}" if self.checkpoint else ""
        rand = ", RANDOMLY INITIALISED weights (random_weights: true)" if self.random_weights else ""
        labels = f", {self.frozen.labels.describe()}" if self.frozen.labels is not None else ""
        if self.frozen.forward_kwargs:
            labels += ", forward(" + ", ".join(f"{k}={v!r}" for k, v in self.frozen.forward_kwargs.items()) + ")"
        bn = ", batch-norm on batch statistics" if self.batchnorm == "batch" else ""
        return (
            f"generator {self.name}{ckpt}{rand} ({self.frozen.latent_spec.describe()}{labels}, "
            f"{shape} in [{lo:g}, {hi:g}] from [{self.output_range[0]:g}, {self.output_range[1]:g}]{bn})"
        )

    def record(self) -> dict[str, Any]:
        """What was sampled, as JSON-ready values: name, checkpoint, ``random_weights``, the latent
        (distribution, shape, dim, truncation), the labels of a conditional generator, batch norm."""
        frozen = self.frozen
        return {
            "name": self.name,
            "checkpoint": self.checkpoint,
            "random_weights": self.random_weights,
            **frozen.latent_spec.record(),
            "labels": None if frozen.labels is None else frozen.labels.record(),
            "forward_kwargs": dict(frozen.forward_kwargs),
            "batchnorm": self.batchnorm,
            "output_range": list(self.output_range),
        }
