"""Sources of samples (P and Q): analytic samplers, image sets, tensor files, generators.

Configs name them by class, e.g. ``p: {class_path: Digits, init_args: {range: [-1, 1]}}`` or
``q: {class_path: Generator, init_args: {name: digits/wgan-gp-8}}``. Every class a configuration
may name as P or Q registers itself (:func:`register_source`); :data:`SOURCES` is that registry.
Whole problems built from sources (toy problems, known-W1 pairs, the MinFunnel pairs) are in
:mod:`wdist.problems`.
"""

from wdist.sources.analytic import Distribution1D, Gaussian, GaussianMixture, PointMass, Sphere, Uniform
from wdist.sources.base import FiniteSource, LatentSource, Source, SourceError, TensorSource, check_compatible
from wdist.sources.generator import Generator, RangeMapped
from wdist.sources.images import CIFAR10, STL10, Digits, ImageFolder, ImageSource, TensorFile
from wdist.sources.memory import ModuleGenerator
from wdist.sources.registry import SOURCES, register_source

__all__ = [
    "Source", "FiniteSource", "TensorSource", "LatentSource", "SourceError", "check_compatible",
    "ImageSource", "CIFAR10", "STL10", "ImageFolder", "TensorFile", "Digits", "Generator", "RangeMapped",
    "ModuleGenerator",
    "Gaussian", "Uniform", "PointMass", "Sphere", "GaussianMixture", "Distribution1D",
    "SOURCES", "register_source",
]  # fmt: skip
