"""ResNet generators of Mimicry (kwotsin/mimicry): SNGAN and WGAN-GP at 32 x 32 and 48 x 48.

Written to the facts in ``specs/generators.md``; the submodule names (``l1``, ``block2..4`` with
``b1, c1, b2, c2, c_sc``, ``b5``, ``c5``) are the published state-dict keys and must not change.
Published ``netG.pth`` files are ``torch.save({"model_state_dict", "optimizer_state_dict",
"global_step"})``.
"""

from __future__ import annotations

import math
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from generators._registry import register_generator

__all__ = ["MimicryGBlock", "MimicryResNetGenerator"]

_PAPER = "Lee & Town 2020, Mimicry: Towards the Reproducibility of GAN Research"
_URL = "https://github.com/kwotsin/mimicry (netG.pth, Google Drive links in its README)"


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class MimicryGBlock(nn.Module):
    """Residual up-block: ``in_channels -> out_channels``, spatial size x 2.

    Main path ``b1`` BN, ReLU, bilinear x2, ``c1`` 3x3 conv, ``b2`` BN, ReLU, ``c2`` 3x3 conv;
    shortcut bilinear x2 then ``c_sc`` 1x1 conv; output is their sum.

    Shape
    -----
    input ``(N, in_channels, H, W)``, output ``(N, out_channels, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.b1 = nn.BatchNorm2d(in_channels)
        self.c1 = nn.Conv2d(in_channels, out_channels, 3, 1, padding=1)
        self.b2 = nn.BatchNorm2d(out_channels)
        self.c2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1)
        self.c_sc = nn.Conv2d(in_channels, out_channels, 1, 1, padding=0)
        nn.init.xavier_uniform_(self.c1.weight, math.sqrt(2.0))
        nn.init.xavier_uniform_(self.c2.weight, math.sqrt(2.0))
        nn.init.xavier_uniform_(self.c_sc.weight, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(_up(F.relu(self.b1(x))))
        h = self.c2(F.relu(self.b2(h)))
        return h + self.c_sc(_up(x))


class MimicryResNetGenerator(nn.Module):
    """Mimicry's ResNet generator (the same network for SNGAN and WGAN-GP).

    ``l1`` Linear(nz -> bw*bw*c0), three :class:`MimicryGBlock` up-blocks, ``b5`` BN, ReLU,
    ``c5`` 3x3 conv to 3 channels, tanh.

    Parameters
    ----------
    nz : int
        Latent size; z ~ N(0, I).
    channels : tuple of int
        Channels before and after each of the three blocks, ``(c0, c1, c2, c3)``.
    bottom_width : int
        Spatial size after ``l1``; the output is ``8 * bottom_width`` square.

    Shape
    -----
    input ``(N, nz)``, output ``(N, 3, 8*bottom_width, 8*bottom_width)`` in [-1, 1].
    """

    def __init__(self, nz: int, channels: tuple[int, int, int, int], bottom_width: int) -> None:
        super().__init__()
        self.nz = nz
        self.bottom_width = bottom_width
        self.ngf = channels[0]
        self.l1 = nn.Linear(nz, bottom_width * bottom_width * channels[0])
        self.block2 = MimicryGBlock(channels[0], channels[1])
        self.block3 = MimicryGBlock(channels[1], channels[2])
        self.block4 = MimicryGBlock(channels[2], channels[3])
        self.b5 = nn.BatchNorm2d(channels[3])
        self.c5 = nn.Conv2d(channels[3], 3, 3, 1, padding=1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0)
        nn.init.xavier_uniform_(self.c5.weight, 1.0)

    def forward(self, z: Tensor) -> Tensor:
        """Map ``z`` of shape ``(N, nz)`` to images ``(N, 3, S, S)`` in [-1, 1]."""
        h = self.l1(z).view(z.shape[0], self.ngf, self.bottom_width, self.bottom_width)
        h = self.block4(self.block3(self.block2(h)))
        return self.c5(F.relu(self.b5(h))).tanh()


def _create_mimicry(size: int) -> MimicryResNetGenerator:
    if size == 32:
        return MimicryResNetGenerator(nz=128, channels=(256, 256, 256, 256), bottom_width=4)
    if size == 48:
        return MimicryResNetGenerator(nz=128, channels=(512, 256, 128, 64), bottom_width=6)
    raise ValueError(f"Mimicry generators exist at 32 and 48 pixels, not {size}")


_COMMON = dict(latent_dim=128, latent="normal", output_range=(-1.0, 1.0), file_format="mimicry", paper=_PAPER, url=_URL)


#: The published ``netG.pth`` files: registry name -> (image side, the data the weights were trained
#: on, with the scores Mimicry reports). SNGAN and WGAN-GP share the network of each side: nz 128,
#: ngf 256 and bottom width 4 at 32 x 32 (CIFAR-10), ngf 512 and bottom width 6 at 48 x 48 (STL-10).
_CHECKPOINTS = {
    "mimicry/sngan-32": (32, "CIFAR-10 32x32 in [-1, 1]; IS 7.97, FID 16.77"),
    "mimicry/wgan-gp-32": (32, "CIFAR-10 32x32 in [-1, 1]; IS 7.33, FID 22.29"),
    "mimicry/sngan-48": (48, "STL-10 unlabeled, resized to 48x48, in [-1, 1]; IS 8.04, FID 39.56"),
    "mimicry/wgan-gp-48": (48, "STL-10 unlabeled, resized to 48x48, in [-1, 1]; IS 8.55, FID 43.01"),
}

for _name, (_size, _data) in _CHECKPOINTS.items():
    register_generator(_name, output_shape=(3, _size, _size), data=_data, **_COMMON)(partial(_create_mimicry, _size))
