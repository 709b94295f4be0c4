"""wdist: certified lower bounds on W1(P, Q) from provably 1-Lipschitz critics.

    import wdist
    result = wdist.estimate("configs/toy/three-cones.yaml", ["--train.steps", "500"])
    print(result.lower_bound, result.ci95, result.certified)
"""

__version__ = "0.1.0"

from wdist.config import EstimateConfig, load_config  # noqa: E402
from wdist.estimate import estimate  # noqa: E402
from wdist.ot import exact_w1, sliced_w1  # noqa: E402
from wdist.results import Result  # noqa: E402

__all__ = ["__version__", "estimate", "EstimateConfig", "load_config", "Result", "exact_w1", "sliced_w1"]
