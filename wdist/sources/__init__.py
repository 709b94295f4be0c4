"""Sources of samples (P and Q) and toy problems.

Configs name them by class, e.g. ``p: {class_path: Digits, init_args: {range: [-1, 1]}}`` or
``toy: {class_path: ThreeCones}``, or a known-W1 pair around a data set:
``toy: {class_path: AnchorPair, init_args: {source: {class_path: Digits}}}`` (:mod:`wdist.sources.pairs`),
or the published MinFunnel pairs: ``toy: {class_path: FunnelPair, init_args: {dim: 64, funnels: 4}}``
(:mod:`wdist.sources.funnels`).
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
from wdist.sources.pairs import PAIRS, AnchorPair, DilatedPair, TranslatedPair, TransportedSource
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

#: Configurable sources by class name (for error messages and listings).
SOURCES: dict[str, type[Source]] = {
    cls.__name__: cls
    for cls in (
        CIFAR10,
        STL10,
        ImageFolder,
        TensorFile,
        Digits,
        Generator,
        Gaussian,
        Uniform,
        PointMass,
        Sphere,
        GaussianMixture,
        Distribution1D,
    )
}

#: Toy problems (P, Q, exact W1) by class name.
TOY_PROBLEMS: dict[str, type[ToyProblem]] = {
    cls.__name__: cls
    for cls in (
        Translation,
        PointVsSphere,
        ThreeCones,
        GaussianMixtures,
        OneDimensional,
    )
}

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
]
