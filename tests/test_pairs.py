"""Known-W1 pairs Q = T(P) around image sources, and ``wdist bench tightness`` at tiny sizes.

Each construction's ``exact_w1`` is checked against two independent computations: the explicit
1-Lipschitz critic's mean difference and the explicit coupling's mean cost (equal to 1e-9 on a
finite source), and POT's exact OT on a subset, where the optimal coupling is the identity
permutation (to 1e-6).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import ot
import pytest
import torch

from wdist.bench import tightness as bench_tightness
from wdist.config import ConfigError, load_config
from wdist.data import PairDataModule
from wdist.problems import AnchorPair, DilatedPair, TranslatedPair
from wdist.sources import Digits, Gaussian, SourceError, TensorFile


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits(limit=300)


@pytest.fixture(scope="module")
def digits16() -> Digits:
    return Digits(limit=200, resize=16)


def _pairs(digits: Digits, digits16: Digits) -> list:
    return [
        TranslatedPair(digits, norm=2.5, pattern="constant", rescale=True),
        TranslatedPair(digits16, norm=2.0, pattern="smooth", seed=3, rescale=True),
        TranslatedPair(digits16, norm=2.0, pattern="checkerboard", rescale=True),
        TranslatedPair(digits, norm=1.5, pattern="signs", seed=1, rescale=True),
        DilatedPair(digits, factor=0.7),
        DilatedPair(digits16, factor=0.9, center="middle"),
        AnchorPair(digits, anchors=5, fraction=0.4, seed=2),
        AnchorPair(digits16, anchors=3, fraction=1.0),
    ]


def test_exact_w1_equals_critic_gap_and_coupling_cost(digits: Digits, digits16: Digits) -> None:
    for pair in _pairs(digits, digits16):
        t = pair.transport
        x = pair.p.data.double()
        y = t(x)
        critic_gap = float(t.critic(x).mean() - t.critic(y).mean())
        coupling_cost = float((x - y).flatten(1).norm(dim=1).mean())
        assert critic_gap == pytest.approx(coupling_cost, abs=1e-9), pair.describe()
        assert pair.exact_w1() == pytest.approx(coupling_cost, abs=1e-9), pair.describe()
        # Q's stored items are T of P's (float32)
        assert torch.allclose(pair.q.data.double(), y, atol=1e-6)
        lo, hi = pair.p.domain
        assert float(pair.q.data.min()) >= lo and float(pair.q.data.max()) <= hi


def test_critics_are_one_lipschitz(digits: Digits, digits16: Digits) -> None:
    gen = torch.Generator().manual_seed(0)
    for pair in _pairs(digits, digits16):
        x = pair.p.data.double()
        a = x[torch.randint(len(x), (400,), generator=gen)]
        b = torch.cat([x[torch.randint(len(x), (200,), generator=gen)], pair.transport(a[:200])])
        b = b + 0.05 * torch.randn(b.shape, generator=gen, dtype=torch.float64)
        gap = (pair.transport.critic(a) - pair.transport.critic(b)).abs()
        dist = (a - b).flatten(1).norm(dim=1)
        assert bool((gap <= dist + 1e-9).all()), pair.describe()


def test_pot_emd2_agrees_on_a_subset(digits: Digits, digits16: Digits) -> None:
    """On m items and their images the identity permutation is an optimal plan, so POT's exact
    OT equals the mean transport distance of those m items."""
    m = 60
    for pair in _pairs(digits, digits16):
        x = pair.p.data[:m].double()
        y = pair.transport(x)
        cost = ot.dist(x.flatten(1).numpy(), y.flatten(1).numpy(), metric="euclidean")
        w = np.full(m, 1.0 / m)
        emd = float(ot.emd2(w, w, cost))
        assert emd == pytest.approx(float(pair.transport.cost(x).mean()), abs=1e-6), pair.describe()
        if pair.transport.closed_form() is not None:
            assert emd == pytest.approx(pair.exact_w1(), abs=1e-6)


def test_translation_leaving_the_domain_is_refused_with_the_range() -> None:
    d = Digits(limit=100)
    with pytest.raises(SourceError, match=r"values in \[-?[0-9.]+, 1\.[0-9]+\], outside the domain \[-1, 1\]"):
        TranslatedPair(d, norm=2.0, pattern="constant")
    with pytest.raises(SourceError, match=r"rescale: true"):
        TranslatedPair(d, norm=2.0, pattern="signs")
    fitted = TranslatedPair(d, norm=2.0, pattern="signs", rescale=True)
    assert "rescaled from [-1, 1] onto [-0.75, 0.75]" in fitted.p.describe()
    with pytest.raises(SourceError, match="wider than the domain"):
        TranslatedPair(d, norm=100.0, pattern="constant", rescale=True)


def test_dilation_leaving_the_domain_is_refused_with_the_range() -> None:
    d = Digits(limit=100)
    with pytest.raises(SourceError, match=r"dilation by 1\.5 .* values in \[-1\.[0-9]+, 1\.[0-9]+\], outside"):
        DilatedPair(d, factor=1.5)
    with pytest.raises(SourceError, match="not 1"):
        DilatedPair(d, factor=1.0)


def test_bad_anchor_counts_are_named() -> None:
    d = Digits(limit=100)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SourceError, match=rf"anchors={bad!r}"):
            AnchorPair(d, anchors=bad)
    with pytest.raises(SourceError, match=r"anchors=101 is more than the 100 items"):
        AnchorPair(d, anchors=101)
    with pytest.raises(SourceError, match=r"fraction=1\.5"):
        AnchorPair(d, fraction=1.5)
    for bad in (0, 1):
        with pytest.raises(SourceError, match=rf"samples={bad}"):
            DilatedPair(Gaussian(dim=3), factor=0.5, samples=bad)
        with pytest.raises(SourceError, match=rf"samples={bad}"):
            AnchorPair(Gaussian(dim=3), anchors=2, samples=bad)


def test_a_base_that_fits_needs_no_rescale(tmp_path: Path) -> None:
    """A base in a narrower range than the pair's domain: P + v fits, nothing rescaled."""
    arr = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", arr)
    base = TensorFile(str(tmp_path / "x.npy"), value_range=(-1, 1))
    pair = TranslatedPair(base, norm=1.0, pattern="checkerboard", domain=(-1.0, 1.0))
    assert torch.equal(pair.p.data, base.data)
    assert pair.exact_w1() == pytest.approx(1.0)
    assert float(pair.q.data.abs().max()) <= 0.5 + 0.25 + 1e-6


def test_infinite_base_gives_a_monte_carlo_value_with_its_interval() -> None:
    g = Gaussian(dim=3, std=1.0)
    pair = DilatedPair(g, factor=0.5, center=0.0, samples=40_000)
    true = 0.5 * 2.0 * math.sqrt(2.0 / math.pi)  # |lambda - 1| E||X||, X ~ N(0, I_3)
    half = float(pair.exact_w1_method().split("+-")[1].split()[0])
    assert abs(pair.exact_w1() - true) < 2 * half
    assert "Monte-Carlo mean over 40000 samples" in pair.exact_w1_method()
    trans = TranslatedPair(g, norm=2.0, pattern="signs")
    assert trans.exact_w1() == pytest.approx(2.0)
    gen = torch.Generator().manual_seed(5)
    x = g.sample(8, torch.Generator().manual_seed(5))
    assert torch.allclose(trans.q.sample(8, gen), x + trans.transport.v.float(), atol=1e-6)


def test_q_follows_the_split_of_p(digits: Digits) -> None:
    pair = AnchorPair(digits, anchors=4, fraction=0.5)
    dm = PairDataModule(pair.p, pair.q, batch_size=16, n_eval=50, seed=3)
    dm.setup()
    t = pair.transport
    assert torch.allclose(dm.test.q, t(dm.test.p.double()).float())
    assert torch.allclose(dm.select.q, t(dm.select.p.double()).float())
    assert torch.allclose(dm.q_train.data, t(dm.p_train.data.double()).float())
    with pytest.raises(SourceError, match="no larger than P's sizes"):
        PairDataModule(pair.p, pair.q, 16, 50, seed=3, n_eval_q=80).setup()


def test_pairs_from_yaml_config() -> None:
    cfg = load_config(
        {
            "toy": {
                "class_path": "TranslatedPair",
                "init_args": {"source": {"class_path": "Digits", "init_args": {"limit": 100}}, "norm": 1.5,
                              "pattern": "signs", "rescale": True},
            },
            "critic": {"name": "bcop-dcgan"},
        }
    )  # fmt: skip
    sides = cfg.sides()
    assert sides.exact_w1 == pytest.approx(1.5)
    assert sides.exact_w1_method.startswith("translation (signs")
    with pytest.raises(ConfigError, match=r"outside the domain \[-1, 1\]"):
        load_config(
            {"toy": {"class_path": "DilatedPair", "init_args": {"source": {"class_path": "Digits"}, "factor": 2.0}}}
        )


def test_bench_tightness_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    out = tmp_path / "tight"
    code = bench_tightness.cli(
        [
            "--source", "digits", "--resize", "0", "--limit", "200", "--critics", "bcop-dcgan", "gp-dcgan",
            "--constructions", "translation", "anchors", "--steps", "3", "--n-eval", "40", "--batch-size", "16",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    rows = json.loads((out / "tightness.json").read_text())
    assert [(r["construction"], r["critic"]) for r in rows] == [
        ("translation", "bcop-dcgan"),
        ("translation", "gp-dcgan"),
        ("anchors", "bcop-dcgan"),
        ("anchors", "gp-dcgan"),
    ]
    for r in rows:
        for key in ("exact_w1", "lower_bound", "ci95", "certified", "ratio", "train_lower_bound", "limited_by"):
            assert r[key] is not None, key
        assert r["ratio"] == pytest.approx(r["lower_bound"] / r["exact_w1"])
        assert r["ci95"][0] <= r["lower_bound"] <= r["ci95"][1]
        assert r["steps"] == 3 and r["seconds"] > 0
    assert rows[0]["exact_w1"] == pytest.approx(3.0)
    for r in rows[:2]:  # a paired train subset of a translation: each item's difference is at most L ||v||
        assert r["train_lower_bound"] <= r["exact_w1"] * (1 + 1e-6)
    assert [r["one_lipschitz"] for r in rows] == [True, False, True, False]
    assert all(r["certified"] for r in rows)  # estimate / L is certified for the GP critic too
    assert (out / "tightness.png").stat().st_size > 0
    table = (out / "tightness.md").read_text()
    assert "| anchors | bcop-dcgan |" in table
    assert "| anchors | bcop-dcgan |" in capsys.readouterr().out


def test_bench_tightness_critic_families() -> None:
    assert bench_tightness.resolve_critic("soc") == "soc-lipconvnet"
    assert bench_tightness.resolve_critic("gp") == "gp-dcgan"
    assert bench_tightness.resolve_critic("aol-convnet") == "aol-convnet"


def test_bench_tightness_critic_options_make_their_own_rows(tmp_path: Path) -> None:
    spec = bench_tightness.parse_critic("cones:init=kmeans,centres=16")
    assert (spec.name, dict(spec.options), spec.label) == (
        "cones",
        {"init": "kmeans", "centres": 16},
        "cones (init: kmeans, centres: 16)",
    )
    assert bench_tightness.parse_critic("soc:grid_cost=0").options == (("grid_cost", 0),)
    listed = bench_tightness.parse_critic("cones:parts=[linear, up],centres=16")
    assert dict(listed.options) == {"parts": ["linear", "up"], "centres": 16}
    for bad in ("cones:inti=kmeans", "cones:init", "bcop:width=1"):
        with pytest.raises(ValueError, match="is not KEY=VALUE with KEY an option of"):
            bench_tightness.parse_critic(bad)
    out = tmp_path / "late"
    with pytest.raises(ConfigError, match="init must be one of"):  # the second column, before any cell trains
        bench_tightness.cli(["--source", "cube", "--dim", "4", "--constructions", "funnels", "--critics", "cones",
                             "cones:init=nearest", "--steps", "1", "--out", str(out)])  # fmt: skip
    assert not (out / "tightness.json").exists()
    rows = bench_tightness.run_tightness(
        bench_tightness.source_config("cube", None, None, None), ["cones:centres=2", "cones:centres=3"], ["funnels"],
        bench_tightness.Budget(steps=2, width=0.25, batch_size=16, lr=1e-3, n_eval=32, seeds=(0,)),
        say=lambda line: None, funnels=bench_tightness.Funnels(dim=4),
    )  # fmt: skip
    assert [(r["critic"], r["critic_name"], r["critic_options"]) for r in rows] == [
        ("cones (centres: 2)", "cones", {"centres": 2}),
        ("cones (centres: 3)", "cones", {"centres": 3}),
    ]
    assert rows[0]["lower_bound"] != rows[1]["lower_bound"]
    assert "| funnels | cones (centres: 2) |" in bench_tightness.format_table(rows)


def test_bench_tightness_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown construction"):
        bench_tightness.cli(["--constructions", "rotation", "--steps", "1"])
    with pytest.raises(ValueError, match="unknown critic"):
        bench_tightness.cli(["--critics", "nope", "--steps", "1"])
    with pytest.raises(ValueError, match="needs --root"):
        bench_tightness.cli(["--source", "cifar10"])
    for flag in ("--steps", "--n-eval", "--batch-size"):
        with pytest.raises(ValueError, match=rf"{flag} must be a positive integer; got 0"):
            bench_tightness.cli([flag, "0"])
    with pytest.raises(ValueError, match=r"--width 0\.0"):
        bench_tightness.cli(["--width", "0"])
    out = tmp_path / "late"
    with pytest.raises(ConfigError, match=r"dilation by 1\.5"):  # refused before any cell trains
        bench_tightness.cli(["--resize", "8", "--constructions", "translation", "dilation", "--factor", "1.5",
                             "--critics", "bjorck-mlp", "--steps", "1", "--out", str(out)])  # fmt: skip
    assert not (out / "tightness.json").exists()


def test_bench_tightness_on_cifar10_files(tmp_path: Path) -> None:
    """``--source cifar10 --root`` wraps the data set in its published format (a test_batch pickle)."""
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = np.random.default_rng(0).integers(0, 256, size=(60, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": data, "labels": [0] * 60}, fh, protocol=2)
    out = tmp_path / "tight"
    code = bench_tightness.cli(
        [
            "--source", "cifar10", "--root", str(tmp_path), "--resize", "16", "--critics", "bcop-dcgan",
            "--constructions", "dilation", "--steps", "2", "--n-eval", "20", "--batch-size", "8", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    (row,) = json.loads((out / "tightness.json").read_text())
    assert row["shape"] == [3, 16, 16] and "CIFAR-10 test" in row["p"]
    x = torch.from_numpy(data.reshape(60, 3, 32, 32)).float() / 127.5 - 1
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(-1, 1).double()
    assert row["exact_w1"] == pytest.approx(0.2 * float((x - x.mean(0)).flatten(1).norm(dim=1).mean()), rel=1e-5)
