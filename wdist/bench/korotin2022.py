"""The published results of Korotin, Kolesov & Burnaev's W1 benchmark, bundled to print beside ours.

Source: "Kantorovich Strikes Back! Wasserstein GANs are not Optimal Transport?" (NeurIPS 2022
Datasets and Benchmarks), the ``cost`` column of the metrics tables in the public repository
justkolesov/Wasserstein1Benchmark (MIT), commit 359d2b120a4f186adf257a4a22d115b13f877251, files
``metrics/metrics_nd/dim_D/width_N/metrics_deg_8_seed_2.csv`` (vectors: D dimensions, N funnels),
``metrics/metrics_cifar/dim_3072/width_N/...`` and ``metrics/metrics_celeba/dim_12288/...`` (images:
1 funnel at deg 10, 16 at deg 100), values rounded to 4 significant digits.

What the numbers are: each solver's W1 **estimate** E_P f - E_Q f of its trained critic on 4096
fresh samples of the paper's infinite samplers (``METRIC_SIZE = 2**12`` in its test notebooks), not
certified and not a bound (several lie far above the true value); ``true`` is the Monte-Carlo mean
of ||x - y|| over 4096 pairs of the construction (so within about ±0.02 of the exact W1 for the
vector pairs). The vector pairs use the paper's own funnel parameters (the same recipe as ours, another
draw: see :mod:`wdist.problems.funnels`); the image pairs use the paper's ResNet generators' CIFAR-10 /
CelebA output as the base, where ours use any image source. Solvers: ``wgan`` (weight clipping),
``wgan-gp`` (gradient penalty), ``wgan-lp`` (Lipschitz penalty), ``sn-gan`` (spectral normalisation),
``sort-out`` (orthogonal layers + GroupSort, the paper's "SO"), ``wgan-qp``, ``lsot-f``, ``3p-wgan``,
``3p-wgan_rev``, ``cowgan``, ``dot`` (the paper's names).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["PUBLISHED", "SOURCE", "published_row"]

#: Where the numbers come from (printed with them).
SOURCE = (
    "Korotin, Kolesov & Burnaev, NeurIPS 2022 (justkolesov/Wasserstein1Benchmark @359d2b1, metrics/*.csv 'cost'): "
    "uncertified estimates E_P f - E_Q f on 4096 samples of infinite samplers; 'true' = Monte-Carlo W1 on 4096 pairs"
)

#: The solvers of the vector cells, in the order of the values in :data:`_VECTORS`; the image cells
#: (:data:`_IMAGES`) have all but ``sort-out``, in the same order.
VECTOR_SOLVERS = (
    "wgan", "wgan-gp", "wgan-lp", "sn-gan", "lsot-f", "3p-wgan", "sort-out", "wgan-qp", "cowgan", "3p-wgan_rev", "dot",
    "true",
)  # fmt: skip
IMAGE_SOLVERS = tuple(s for s in VECTOR_SOLVERS if s != "sort-out")

# fmt: off
#: (kind, dimension, funnels) of an image cell -> the published estimates, in :data:`IMAGE_SOLVERS` order.
_IMAGES: dict[tuple[str, int, int], tuple[float, ...]] = {
    ("celeba", 12288, 1): (1.12e+07, 214.1, 215.2, 179.9, 32.16, 2.036e+06, 14.42, 85.78, 38.19, 66.29, 58.38),
    ("celeba", 12288, 16): (6.264e+06, 64.39, 66.02, 78.48, 3.159, 4673, 2.6, 51.05, 41.25, 53.55, 29.78),
    ("cifar", 3072, 1): (2.018e+04, 66.25, 66.79, 20.44, 17, 35.1, 15.9, 35.27, 24.29, 31.17, 29.66),
    ("cifar", 3072, 16): (1.61e+04, 36.16, 36.75, 13.26, 5.549, 4.138e+06, 4.214, 24.36, 23.47, 25.35, 18.82),
}

#: (dimension, funnels) of a vector cell -> the published estimates, in :data:`VECTOR_SOLVERS` order.
_VECTORS: dict[tuple[int, int], tuple[float, ...]] = {
    (2, 4): (0.03069, 0.8571, 0.885, 0.1522, 0.4273, 0.7888, 0.7596, 0.7941, 0.8001, 0.7993, 0.8196, 0.8174),
    (2, 16): (0.0441, 0.4221, 0.4786, 0.0786, 0.09064, 0.4715, 0.2836, 0.437, 0.4729, 0.4544, 0.4739, 0.4662),
    (2, 64): (-0.005057, 0.1268, 0.2237, 0.003352, 0.00222, 0.2772, 0.08538, 0.1866, 0.2138, 0.2151, 0.2368, 0.2303),
    (2, 256): (-0.006772, 0.04124, 0.105, -0.0007554, 0.001843, 0.1618, 0.03523, 0.06007, 0.1167, 0.09968, 0.1518,
               0.1336),
    (4, 4): (0.4061, 1.447, 1.482, 0.4419, 0.4537, 1.347, 1.266, 1.076, 1.422, 1.373, 1.434, 1.385),
    (4, 16): (0.1912, 1.056, 1.058, 0.1801, 0.152, 1.12, 0.5574, 0.666, 1.009, 0.9933, 1.072, 1.003),
    (4, 64): (0.05609, 0.5783, 0.6877, 0.07602, 0.0114, 1.348, 0.2589, 0.3524, 0.7406, 0.6648, 0.7993, 0.7098),
    (4, 256): (0.01804, 0.2234, 0.3866, 0.02092, -0.006018, 0.906, 0.09207, 0.1058, 0.5156, 0.4334, 0.6379, 0.4916),
    (8, 4): (1.109, 1.998, 1.984, 0.5908, 0.2366, 1.853, 1.684, 0.7426, 2.09, 1.892, 2.42, 1.882),
    (8, 16): (0.6048, 1.7, 1.662, 0.3378, 0.06566, 1.578, 1.042, 0.5207, 1.818, 1.536, 2.192, 1.585),
    (8, 64): (0.2101, 1.163, 1.182, 0.1794, -0.0588, 2.747, 0.5395, 0.2144, 1.457, 1.282, 1.924, 1.259),
    (8, 256): (0.0943, 0.7097, 0.7825, 0.08175, -0.05895, 2.103, 0.2862, 0.0464, 1.206, 1.037, 1.791, 1.008),
    (16, 4): (1.723, 2.071, 2.122, 0.633, -0.1587, 1.959, 1.889, 0.1078, 2.856, 2.058, 4.129, 1.941),
    (16, 16): (1.588, 1.813, 1.807, 0.4633, -0.205, 1.757, 1.461, 0.00185, 2.536, 1.843, 4.04, 1.738),
    (16, 64): (0.5202, 1.356, 1.348, 0.1947, -0.1975, 1.744, 0.8494, -0.05131, 2.138, 1.805, 3.982, 1.554),
    (16, 256): (0.2854, 0.9137, 0.9112, 0.1414, -0.1797, 1.872, 0.5534, -0.09661, 1.681, 1.548, 3.932, 1.399),
    (32, 4): (2.846, 1.98, 1.917, 0.7327, -0.3576, 1.759, 1.777, -0.2261, 4.05, 2.262, 7.256, 1.822),
    (32, 16): (0.9953, 1.711, 1.613, 0.2911, -0.3732, 1.687, 1.522, -0.2695, 3.157, 2.005, 7.23, 1.67),
    (32, 64): (0.5211, 1.191, 1.177, 0.1909, -0.3453, 1.683, 1.057, -0.2625, 2.37, 2.216, 7.233, 1.543),
    (32, 256): (0.2968, 0.8707, 0.8017, 0.1214, -0.2934, 1.346, 0.7331, -0.244, 2.034, 1.801, 7.261, 1.412),
    (64, 4): (3.312, 1.378, 1.46, 0.6542, -0.4307, 1.224, 1.425, -0.3938, 4.6, 3.321, 12.01, 1.411),
    (64, 16): (1.312, 1.092, 1.146, 0.3196, -0.3743, 1.837, 1.367, -0.3521, 3.578, 4.351, 12.05, 1.36),
    (64, 64): (0.7015, 0.8144, 0.8326, 0.1523, -0.3481, 1.172, 1.077, -0.3311, 2.708, 1.507, 12.07, 1.317),
    (64, 256): (0.3574, 0.6737, 0.6934, 0.1249, -0.3246, 0.7851, 0.8014, -0.3169, 2.612, 1.017, 12.09, 1.283),
    (128, 4): (9.441, 1.136, 1.144, 0.3695, -0.3815, 0.9687, 1.047, -0.3817, 7.202, 0.5967, 18.88, 1.142),
    (128, 16): (5.913, 0.9195, 0.8722, 0.2857, -0.3638, 0.7559, 0.9752, -0.3711, 3.907, 0.7266, 18.9, 1.072),
    (128, 64): (2.797, 0.7109, 0.6866, 0.1915, -0.3435, 0.6029, 0.6932, -0.3461, 2.375, 0.5555, 18.92, 1.045),
    (128, 256): (1.09, 0.6016, 0.6402, 0.09859, -0.3237, 0.3311, 0.647, -0.3346, 2.562, 0.3887, 18.93, 1.042),
}
# fmt: on

#: (kind, dimension, funnels) -> {solver: published W1 estimate}.
PUBLISHED: dict[tuple[str, int, int], dict[str, float]] = {
    **{cell: dict(zip(IMAGE_SOLVERS, values, strict=True)) for cell, values in _IMAGES.items()},
    **{("vectors", *cell): dict(zip(VECTOR_SOLVERS, values, strict=True)) for cell, values in _VECTORS.items()},
}


def published_row(kind: str, dim: int, funnels: int) -> Optional[dict[str, float]]:
    """The published estimates of the cell (``kind`` ``vectors``, ``cifar`` or ``celeba``), or ``None``."""
    return PUBLISHED.get((kind, int(dim), int(funnels)))
