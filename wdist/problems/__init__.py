"""Problems: pairs of distributions (P, Q) with W1 where it is known exactly, built from sources.

Configs name them by class as ``toy``: an analytic toy problem (``toy: {class_path: ThreeCones}``,
:mod:`wdist.problems.toy`), a known-W1 pair Q = T(P) around a source
(``toy: {class_path: AnchorPair, init_args: {source: {class_path: Digits}}}``,
:mod:`wdist.problems.pairs` on the maps of :mod:`wdist.problems.transports`), or the published
MinFunnel pairs (``toy: {class_path: FunnelPair, init_args: {dim: 64, funnels: 4}}``,
:mod:`wdist.problems.funnel_pair`).

Every class a configuration may name registers itself (:func:`register_problem`);
:data:`TOY_PROBLEMS` and :data:`PAIRS` are those registries. The sources they are built from (P, Q
on their own) are in :mod:`wdist.sources`; this package imports them, never the other way.
"""

from wdist.problems.base import ToyProblem
from wdist.problems.exact1d import w1_1d_exact
from wdist.problems.funnel_pair import FunnelPair
from wdist.problems.pairs import AnchorPair, DilatedPair, TranslatedPair, TransportPair
from wdist.problems.registry import PAIRS, TOY_PROBLEMS, current_class_paths, register_problem, registered_class
from wdist.problems.toy import GaussianMixtures, OneDimensional, PointVsSphere, ThreeCones, Translation
from wdist.problems.transported import TransportedSource

__all__ = [
    "ToyProblem", "Translation", "PointVsSphere", "ThreeCones", "GaussianMixtures", "OneDimensional", "w1_1d_exact",
    "TransportPair", "TranslatedPair", "DilatedPair", "AnchorPair", "FunnelPair", "TransportedSource",
    "TOY_PROBLEMS", "PAIRS", "register_problem", "registered_class", "current_class_paths",
]  # fmt: skip
