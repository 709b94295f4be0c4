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
draw: see :mod:`wdist.sources.funnels`); the image pairs use the paper's ResNet generators' CIFAR-10 /
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

#: (kind, dimension, funnels) -> {solver: published W1 estimate}.
PUBLISHED: dict[tuple[str, int, int], dict[str, float]] = {
    ("celeba", 12288, 1): {
        "wgan": 1.12e+07, "wgan-gp": 214.1, "wgan-lp": 215.2, "sn-gan": 179.9, "lsot-f": 32.16,
        "3p-wgan": 2.036e+06, "cowgan": 85.78, "wgan-qp": 14.42, "3p-wgan_rev": 38.19, "dot": 66.29, "true": 58.38,
    },
    ("celeba", 12288, 16): {
        "wgan": 6.264e+06, "wgan-gp": 64.39, "wgan-lp": 66.02, "sn-gan": 78.48, "lsot-f": 3.159, "3p-wgan": 4673,
        "cowgan": 51.05, "wgan-qp": 2.6, "3p-wgan_rev": 41.25, "dot": 53.55, "true": 29.78,
    },
    ("cifar", 3072, 1): {
        "wgan": 2.018e+04, "wgan-gp": 66.25, "wgan-lp": 66.79, "sn-gan": 20.44, "lsot-f": 17, "3p-wgan": 35.1,
        "cowgan": 35.27, "wgan-qp": 15.9, "3p-wgan_rev": 24.29, "dot": 31.17, "true": 29.66,
    },
    ("cifar", 3072, 16): {
        "wgan": 1.61e+04, "wgan-gp": 36.16, "wgan-lp": 36.75, "sn-gan": 13.26, "lsot-f": 5.549,
        "3p-wgan": 4.138e+06, "cowgan": 24.36, "wgan-qp": 4.214, "3p-wgan_rev": 23.47, "dot": 25.35, "true": 18.82,
    },
    ("vectors", 2, 4): {
        "wgan": 0.03069, "wgan-gp": 0.8571, "wgan-lp": 0.885, "sn-gan": 0.1522, "lsot-f": 0.4273, "3p-wgan": 0.7888,
        "sort-out": 0.7596, "wgan-qp": 0.7941, "cowgan": 0.8001, "3p-wgan_rev": 0.7993, "dot": 0.8196,
        "true": 0.8174,
    },
    ("vectors", 2, 16): {
        "wgan": 0.0441, "wgan-gp": 0.4221, "wgan-lp": 0.4786, "sn-gan": 0.0786, "lsot-f": 0.09064,
        "3p-wgan": 0.4715, "sort-out": 0.2836, "wgan-qp": 0.437, "cowgan": 0.4729, "3p-wgan_rev": 0.4544,
        "dot": 0.4739, "true": 0.4662,
    },
    ("vectors", 2, 64): {
        "wgan": -0.005057, "wgan-gp": 0.1268, "wgan-lp": 0.2237, "sn-gan": 0.003352, "lsot-f": 0.00222,
        "3p-wgan": 0.2772, "sort-out": 0.08538, "wgan-qp": 0.1866, "cowgan": 0.2138, "3p-wgan_rev": 0.2151,
        "dot": 0.2368, "true": 0.2303,
    },
    ("vectors", 2, 256): {
        "wgan": -0.006772, "wgan-gp": 0.04124, "wgan-lp": 0.105, "sn-gan": -0.0007554, "lsot-f": 0.001843,
        "3p-wgan": 0.1618, "sort-out": 0.03523, "wgan-qp": 0.06007, "cowgan": 0.1167, "3p-wgan_rev": 0.09968,
        "dot": 0.1518, "true": 0.1336,
    },
    ("vectors", 4, 4): {
        "wgan": 0.4061, "wgan-gp": 1.447, "wgan-lp": 1.482, "sn-gan": 0.4419, "lsot-f": 0.4537, "3p-wgan": 1.347,
        "sort-out": 1.266, "wgan-qp": 1.076, "cowgan": 1.422, "3p-wgan_rev": 1.373, "dot": 1.434, "true": 1.385,
    },
    ("vectors", 4, 16): {
        "wgan": 0.1912, "wgan-gp": 1.056, "wgan-lp": 1.058, "sn-gan": 0.1801, "lsot-f": 0.152, "3p-wgan": 1.12,
        "sort-out": 0.5574, "wgan-qp": 0.666, "cowgan": 1.009, "3p-wgan_rev": 0.9933, "dot": 1.072, "true": 1.003,
    },
    ("vectors", 4, 64): {
        "wgan": 0.05609, "wgan-gp": 0.5783, "wgan-lp": 0.6877, "sn-gan": 0.07602, "lsot-f": 0.0114,
        "3p-wgan": 1.348, "sort-out": 0.2589, "wgan-qp": 0.3524, "cowgan": 0.7406, "3p-wgan_rev": 0.6648,
        "dot": 0.7993, "true": 0.7098,
    },
    ("vectors", 4, 256): {
        "wgan": 0.01804, "wgan-gp": 0.2234, "wgan-lp": 0.3866, "sn-gan": 0.02092, "lsot-f": -0.006018,
        "3p-wgan": 0.906, "sort-out": 0.09207, "wgan-qp": 0.1058, "cowgan": 0.5156, "3p-wgan_rev": 0.4334,
        "dot": 0.6379, "true": 0.4916,
    },
    ("vectors", 8, 4): {
        "wgan": 1.109, "wgan-gp": 1.998, "wgan-lp": 1.984, "sn-gan": 0.5908, "lsot-f": 0.2366, "3p-wgan": 1.853,
        "sort-out": 1.684, "wgan-qp": 0.7426, "cowgan": 2.09, "3p-wgan_rev": 1.892, "dot": 2.42, "true": 1.882,
    },
    ("vectors", 8, 16): {
        "wgan": 0.6048, "wgan-gp": 1.7, "wgan-lp": 1.662, "sn-gan": 0.3378, "lsot-f": 0.06566, "3p-wgan": 1.578,
        "sort-out": 1.042, "wgan-qp": 0.5207, "cowgan": 1.818, "3p-wgan_rev": 1.536, "dot": 2.192, "true": 1.585,
    },
    ("vectors", 8, 64): {
        "wgan": 0.2101, "wgan-gp": 1.163, "wgan-lp": 1.182, "sn-gan": 0.1794, "lsot-f": -0.0588, "3p-wgan": 2.747,
        "sort-out": 0.5395, "wgan-qp": 0.2144, "cowgan": 1.457, "3p-wgan_rev": 1.282, "dot": 1.924, "true": 1.259,
    },
    ("vectors", 8, 256): {
        "wgan": 0.0943, "wgan-gp": 0.7097, "wgan-lp": 0.7825, "sn-gan": 0.08175, "lsot-f": -0.05895,
        "3p-wgan": 2.103, "sort-out": 0.2862, "wgan-qp": 0.0464, "cowgan": 1.206, "3p-wgan_rev": 1.037,
        "dot": 1.791, "true": 1.008,
    },
    ("vectors", 16, 4): {
        "wgan": 1.723, "wgan-gp": 2.071, "wgan-lp": 2.122, "sn-gan": 0.633, "lsot-f": -0.1587, "3p-wgan": 1.959,
        "sort-out": 1.889, "wgan-qp": 0.1078, "cowgan": 2.856, "3p-wgan_rev": 2.058, "dot": 4.129, "true": 1.941,
    },
    ("vectors", 16, 16): {
        "wgan": 1.588, "wgan-gp": 1.813, "wgan-lp": 1.807, "sn-gan": 0.4633, "lsot-f": -0.205, "3p-wgan": 1.757,
        "sort-out": 1.461, "wgan-qp": 0.00185, "cowgan": 2.536, "3p-wgan_rev": 1.843, "dot": 4.04, "true": 1.738,
    },
    ("vectors", 16, 64): {
        "wgan": 0.5202, "wgan-gp": 1.356, "wgan-lp": 1.348, "sn-gan": 0.1947, "lsot-f": -0.1975, "3p-wgan": 1.744,
        "sort-out": 0.8494, "wgan-qp": -0.05131, "cowgan": 2.138, "3p-wgan_rev": 1.805, "dot": 3.982, "true": 1.554,
    },
    ("vectors", 16, 256): {
        "wgan": 0.2854, "wgan-gp": 0.9137, "wgan-lp": 0.9112, "sn-gan": 0.1414, "lsot-f": -0.1797, "3p-wgan": 1.872,
        "sort-out": 0.5534, "wgan-qp": -0.09661, "cowgan": 1.681, "3p-wgan_rev": 1.548, "dot": 3.932, "true": 1.399,
    },
    ("vectors", 32, 4): {
        "wgan": 2.846, "wgan-gp": 1.98, "wgan-lp": 1.917, "sn-gan": 0.7327, "lsot-f": -0.3576, "3p-wgan": 1.759,
        "sort-out": 1.777, "wgan-qp": -0.2261, "cowgan": 4.05, "3p-wgan_rev": 2.262, "dot": 7.256, "true": 1.822,
    },
    ("vectors", 32, 16): {
        "wgan": 0.9953, "wgan-gp": 1.711, "wgan-lp": 1.613, "sn-gan": 0.2911, "lsot-f": -0.3732, "3p-wgan": 1.687,
        "sort-out": 1.522, "wgan-qp": -0.2695, "cowgan": 3.157, "3p-wgan_rev": 2.005, "dot": 7.23, "true": 1.67,
    },
    ("vectors", 32, 64): {
        "wgan": 0.5211, "wgan-gp": 1.191, "wgan-lp": 1.177, "sn-gan": 0.1909, "lsot-f": -0.3453, "3p-wgan": 1.683,
        "sort-out": 1.057, "wgan-qp": -0.2625, "cowgan": 2.37, "3p-wgan_rev": 2.216, "dot": 7.233, "true": 1.543,
    },
    ("vectors", 32, 256): {
        "wgan": 0.2968, "wgan-gp": 0.8707, "wgan-lp": 0.8017, "sn-gan": 0.1214, "lsot-f": -0.2934, "3p-wgan": 1.346,
        "sort-out": 0.7331, "wgan-qp": -0.244, "cowgan": 2.034, "3p-wgan_rev": 1.801, "dot": 7.261, "true": 1.412,
    },
    ("vectors", 64, 4): {
        "wgan": 3.312, "wgan-gp": 1.378, "wgan-lp": 1.46, "sn-gan": 0.6542, "lsot-f": -0.4307, "3p-wgan": 1.224,
        "sort-out": 1.425, "wgan-qp": -0.3938, "cowgan": 4.6, "3p-wgan_rev": 3.321, "dot": 12.01, "true": 1.411,
    },
    ("vectors", 64, 16): {
        "wgan": 1.312, "wgan-gp": 1.092, "wgan-lp": 1.146, "sn-gan": 0.3196, "lsot-f": -0.3743, "3p-wgan": 1.837,
        "sort-out": 1.367, "wgan-qp": -0.3521, "cowgan": 3.578, "3p-wgan_rev": 4.351, "dot": 12.05, "true": 1.36,
    },
    ("vectors", 64, 64): {
        "wgan": 0.7015, "wgan-gp": 0.8144, "wgan-lp": 0.8326, "sn-gan": 0.1523, "lsot-f": -0.3481, "3p-wgan": 1.172,
        "sort-out": 1.077, "wgan-qp": -0.3311, "cowgan": 2.708, "3p-wgan_rev": 1.507, "dot": 12.07, "true": 1.317,
    },
    ("vectors", 64, 256): {
        "wgan": 0.3574, "wgan-gp": 0.6737, "wgan-lp": 0.6934, "sn-gan": 0.1249, "lsot-f": -0.3246,
        "3p-wgan": 0.7851, "sort-out": 0.8014, "wgan-qp": -0.3169, "cowgan": 2.612, "3p-wgan_rev": 1.017,
        "dot": 12.09, "true": 1.283,
    },
    ("vectors", 128, 4): {
        "wgan": 9.441, "wgan-gp": 1.136, "wgan-lp": 1.144, "sn-gan": 0.3695, "lsot-f": -0.3815, "3p-wgan": 0.9687,
        "sort-out": 1.047, "wgan-qp": -0.3817, "cowgan": 7.202, "3p-wgan_rev": 0.5967, "dot": 18.88, "true": 1.142,
    },
    ("vectors", 128, 16): {
        "wgan": 5.913, "wgan-gp": 0.9195, "wgan-lp": 0.8722, "sn-gan": 0.2857, "lsot-f": -0.3638, "3p-wgan": 0.7559,
        "sort-out": 0.9752, "wgan-qp": -0.3711, "cowgan": 3.907, "3p-wgan_rev": 0.7266, "dot": 18.9, "true": 1.072,
    },
    ("vectors", 128, 64): {
        "wgan": 2.797, "wgan-gp": 0.7109, "wgan-lp": 0.6866, "sn-gan": 0.1915, "lsot-f": -0.3435, "3p-wgan": 0.6029,
        "sort-out": 0.6932, "wgan-qp": -0.3461, "cowgan": 2.375, "3p-wgan_rev": 0.5555, "dot": 18.92, "true": 1.045,
    },
    ("vectors", 128, 256): {
        "wgan": 1.09, "wgan-gp": 0.6016, "wgan-lp": 0.6402, "sn-gan": 0.09859, "lsot-f": -0.3237, "3p-wgan": 0.3311,
        "sort-out": 0.647, "wgan-qp": -0.3346, "cowgan": 2.562, "3p-wgan_rev": 0.3887, "dot": 18.93, "true": 1.042,
    },
}


def published_row(kind: str, dim: int, funnels: int) -> Optional[dict[str, float]]:
    """The published estimates of the cell (``kind`` ``vectors``, ``cifar`` or ``celeba``), or ``None``."""
    return PUBLISHED.get((kind, int(dim), int(funnels)))
