"""Critic architectures; importing a file registers its critics (keep this a plain import list)."""

from critics.architectures import mlp

# Convolutional critics (dcgan, lipconvnet, ...): one import line per file here.
from critics.architectures import dcgan, lipconvnet

__all__ = ["mlp", "dcgan", "lipconvnet"]
