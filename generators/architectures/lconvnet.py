"""WGAN-GP generators of LConvNet (ColinQiyangLi/LConvNet), behind the published BCOP W1 table.

InfoGAN-style: ``fc`` (Linear, BN1d, ReLU, Linear, BN1d, ReLU), view as (32, s/4, s/4),
``deconv`` (ConvTranspose2d, BN2d, ReLU, ConvTranspose2d, tanh). Keys ``fc.0``, ``fc.1``,
``fc.3``, ``fc.4``, ``deconv.0``, ``deconv.1``, ``deconv.3`` as in the published
``WGAN_GP_G.pkl`` (a raw ``torch.save(state_dict)``).

The published sampler never called ``eval()``, so its batch norm used the statistics of each batch
of 64 samples; load with ``batchnorm="batch"`` to reproduce it. The default is eval mode.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from generators._registry import register_generator

__all__ = ["LConvNetGenerator"]

_PAPER = "Li et al. 2019, Preventing Gradient Attenuation in Lipschitz Constrained Convolutional Networks (BCOP)"
_URL = "https://github.com/ColinQiyangLi/LConvNet (WGAN_GP_G.pkl)"


class LConvNetGenerator(nn.Module):
    """LConvNet's InfoGAN-style WGAN-GP generator.

    Parameters
    ----------
    image_size : int
        Output side ``s`` (a multiple of 4): 32 for CIFAR-10, 64 for STL-10.
    latent_dim : int
        Size of z ~ U[0, 1)^latent_dim (62 in the published files).
    hidden : int
        Channels after ``fc`` (32 in the published files).
    output_channels : int
        Image channels.

    Shape
    -----
    input ``(N, latent_dim)``, output ``(N, output_channels, s, s)`` in [-1, 1].
    """

    def __init__(self, image_size: int, latent_dim: int = 62, hidden: int = 32, output_channels: int = 3) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.hidden = hidden
        q = image_size // 4
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, hidden * q * q),
            nn.BatchNorm1d(hidden * q * q),
            nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(hidden, 64, 4, 2, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, output_channels, 4, 2, 1),
            nn.Tanh(),
        )
        for m in self.modules():  # InfoGAN-style initialisation
            if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor) -> Tensor:
        """Map ``z`` of shape ``(N, latent_dim)`` to images ``(N, C, s, s)`` in [-1, 1]."""
        q = self.image_size // 4
        return self.deconv(self.fc(z).view(-1, self.hidden, q, q))


_COMMON = dict(latent_dim=62, latent="uniform", output_range=(-1.0, 1.0), file_format="raw", paper=_PAPER, url=_URL)


#: How the published weights were trained (both sides).
_TRAINING = "128 epochs, batch 64, Adam 2e-4 (0.5, 0.999), GP 50, 5 critic steps"

#: The published ``WGAN_GP_G.pkl`` files: registry name -> (image side, the data the weights were
#: trained on); latent 62, uniform.
_CHECKPOINTS = {
    "lconvnet/wgan-gp-32": (32, f"CIFAR-10, Resize((32, 32)), [-1, 1]; {_TRAINING}"),
    "lconvnet/wgan-gp-64": (64, f"STL-10, Resize((64, 64)), [-1, 1]; {_TRAINING}"),
}

for _name, (_size, _data) in _CHECKPOINTS.items():
    register_generator(_name, output_shape=(3, _size, _size), data=_data, **_COMMON)(partial(LConvNetGenerator, _size))
