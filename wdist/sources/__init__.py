"""Sources of samples (P and Q) and toy problems.

Configs name them by class, e.g. ``p: {class_path: Digits, init_args: {range: [-1, 1]}}`` or
``toy: {class_path: ThreeCones}``, or a known-W1 pair around a data set:
``toy: {class_path: AnchorPair, init_args: {source: {class_path: Digits}}}`` (:mod:`wdist.sources.pairs`),
or the published MinFunnel pairs: ``toy: {class_path: FunnelPair, init_args: {dim: 64, funnels: 4}}``
(:mod:`wdist.sources.funnels`).

Every class a configuration may name registers itself (:mod:`wdist.sources.registry`:
``@register_source``, ``@register_problem``); :data:`SOURCES`, :data:`TOY_PROBLEMS` and
:data:`PAIRS` are those registries.
"""

from wdist.sources.base import (
    FiniteSource,
    LatentSource,
    Source,
    SourceError,
    TensorSource,
    ToyProblem,
    check_compatible,
)
from wdist.sources.funnels import FunnelPair
from wdist.sources.generator import Generator, RangeMapped
from wdist.sources.images import CIFAR10, STL10, Digits, ImageFolder, ImageSource, TensorFile
from wdist.sources.pairs import AnchorPair, DilatedPair, TranslatedPair, TransportedSource
from wdist.sources.registry import PAIRS, SOURCES, TOY_PROBLEMS, register_problem, register_source
from wdist.sources.toy import (
    Distribution1D,
    Gaussian,
    GaussianMixture,
    GaussianMixtures,
    OneDimensional,
    PointMass,
    PointVsSphere,
    Shifted,
    Sphere,
    ThreeCones,
    Translation,
    Uniform,
)

__all__ = [
    "Source",
    "FiniteSource",
    "TensorSource",
    "LatentSource",
    "ToyProblem",
    "SourceError",
    "check_compatible",
    "ImageSource",
    "CIFAR10",
    "STL10",
    "ImageFolder",
    "TensorFile",
    "Digits",
    "Generator",
    "RangeMapped",
    "Gaussian",
    "Uniform",
    "PointMass",
    "Sphere",
    "GaussianMixture",
    "Distribution1D",
    "Shifted",
    "Translation",
    "PointVsSphere",
    "ThreeCones",
    "GaussianMixtures",
    "OneDimensional",
    "TranslatedPair",
    "DilatedPair",
    "AnchorPair",
    "FunnelPair",
    "TransportedSource",
    "PAIRS",
    "SOURCES",
    "TOY_PROBLEMS",
    "register_source",
    "register_problem",
]
