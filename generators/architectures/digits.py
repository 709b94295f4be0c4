"""The small generator bundled with wdist: WGAN-GP on scikit-learn's 8 x 8 digits.

Trained by ``python -m generators.train_digits`` (recipe and timing in
``generators/weights/digits_wgan_gp_8.json``); the weights ship as package data so that the
offline default ``digits/wgan-gp-8`` needs no download.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor, nn

from generators._registry import register_generator

__all__ = ["DigitsGenerator", "BUNDLED_WEIGHTS", "BUNDLED_RECIPE", "digits_wgan_gp_8"]

_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Shipped weights (raw state dict) and their recipe (which holds the file's sha256).
BUNDLED_WEIGHTS = _WEIGHTS_DIR / "digits_wgan_gp_8.pt"
BUNDLED_RECIPE = _WEIGHTS_DIR / "digits_wgan_gp_8.json"


class DigitsGenerator(nn.Module):
    """MLP generator for 1 x 8 x 8 images in [-1, 1].

    ``Linear(latent_dim -> h1) - ReLU - Linear(h1 -> h2) - ReLU - Linear(h2 -> 64) - tanh``,
    reshaped to one channel of 8 x 8. No batch norm, so eval and train modes agree.

    Parameters
    ----------
    latent_dim : int
        Size of z ~ N(0, I).
    hidden : tuple of int
        Widths of the two hidden layers.

    Shape
    -----
    input ``(N, latent_dim)``, output ``(N, 1, 8, 8)`` in [-1, 1] (pixel intensity 0..16 mapped
    linearly to -1..1).
    """

    def __init__(self, latent_dim: int = 32, hidden: tuple[int, int] = (128, 256)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 64),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Map ``z`` of shape ``(N, latent_dim)`` to images ``(N, 1, 8, 8)`` in [-1, 1]."""
        return self.net(z).view(-1, 1, 8, 8)


def _bundled_sha256() -> str | None:
    try:
        return str(json.loads(BUNDLED_RECIPE.read_text())["sha256"])
    except (OSError, ValueError, KeyError):
        return None


@register_generator(
    "digits/wgan-gp-8",
    latent_dim=32,
    latent="normal",
    output_shape=(1, 8, 8),
    output_range=(-1.0, 1.0),
    file_format="raw",
    paper="Gulrajani et al. 2017, Improved Training of Wasserstein GANs (WGAN-GP); trained by wdist",
    data="scikit-learn load_digits(), 1797 images, 0..16 scaled to [-1, 1]",
    url=None,
    sha256=_bundled_sha256(),
    bundled=BUNDLED_WEIGHTS.name,
)
def digits_wgan_gp_8() -> nn.Module:
    """The bundled digits generator (latent 32, normal; output 1 x 8 x 8 in [-1, 1])."""
    return DigitsGenerator(latent_dim=32, hidden=(128, 256))
