"""Critic architectures; importing a file registers its critics (keep this a plain import list)."""

# Convolutional critics (dcgan, lipconvnet, ...): one import line per file here.
from critics.architectures import cones, convnet, dcgan, lipconvnet, mlp

__all__ = ["mlp", "dcgan", "lipconvnet", "convnet", "cones"]
