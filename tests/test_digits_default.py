"""The offline default end to end (reduced steps): digits vs the bundled generator, the cone critic."""

from __future__ import annotations

from pathlib import Path

import pytest

import wdist
from wdist.cli import main
from wdist.config import ConfigError, default_config_path, load_config, read_config_file

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_is_the_digits_problem() -> None:
    cfg = load_config(None)
    assert default_config_path() == ROOT / "configs" / "digits" / "default.yaml"
    assert cfg.critic.name == "cones"
    assert type(cfg.sides().p).__name__ == "Digits" and len(cfg.sides().p) == 1797
    assert type(cfg.sides().q).__name__ == "Generator"
    assert tuple(cfg.sides().p.shape) == tuple(cfg.sides().q.shape) == (1, 8, 8)
    assert cfg.eval.ot_samples >= 1797


def test_default_end_to_end_gives_certified_bound_below_exact_ot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["estimate", "--out", str(tmp_path), "--quiet", "--train.steps", "40", "--train.eval_every", "20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "certified W1 lower bound" in out and "Lipschitz certificate" in out
    assert "exact OT on 1797 vs 1797 samples" in out
    result = wdist.Result.load(tmp_path / "result.json")
    assert result.certified and result.lipschitz_certificate <= 1 + 1e-4
    assert result.references.empirical_ot_n == 1797
    # the floor needs two disjoint halves of the 1797 digits: stated, since it is at another n
    assert result.references.empirical_ot_floor_n == 898
    assert "sampling bias on 898 vs 898 samples" in out
    assert "W1 at least" in out and f"{result.ci95[0]:.4f}" in out
    assert 0 < result.lower_bound < result.references.empirical_ot_w1  # certified bound <= W1 <= E(empirical OT)
    assert result.ci95[1] < result.references.empirical_ot_w1
    assert result.run.shape == [1, 8, 8] and result.run.domain == [-1.0, 1.0]
    assert result.empirical_lipschitz <= result.lipschitz_certificate * (1 + 1e-6)
    assert [c["step"] for c in result.curve] == [20, 40]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_is_valid(path: Path) -> None:
    """Every config parses; those needing data or checkpoints fail only with the clear 'missing' error."""
    if path.parent.name == "compare":
        from wdist.compare_spec import read_comparison

        _, spec, data, _ = read_comparison(path)
        import critics

        for entry in spec.critics:
            assert entry.name in critics.available()
        data["critic"] = {"name": spec.critics[0].name, "options": spec.critics[0].options}
    else:
        data = read_config_file(path)  # relative paths read from the file's folder
    try:
        load_config(data)
    except ConfigError as err:  # real data sets / published checkpoints are not on CI machines
        msg = str(err)
        assert path.parent.name in ("cifar10", "stl10", "compare"), msg
        assert any(s in msg for s in ("cifar-10-batches-py", "stl10_binary", "checkpoints/")), msg


def test_bernstein_interval_uses_an_a_priori_range() -> None:
    """In [-1, 1]^64 a certified critic's values lie in an interval of width 1 * 2 * 8: a range known
    in advance (each side's; the two-sample bound adds the two sides' deviations)."""
    fast = [
        "--train.steps",
        "6",
        "--train.eval_every",
        "6",
        "--eval.ot_samples",
        "0",
        "--eval.empirical_lipschitz_samples",
        "0",
    ]
    normal = wdist.estimate(None, fast, quiet=True)
    bern = wdist.estimate(None, fast + ["--eval.interval", "bernstein"], quiet=True)
    assert bern.estimate == pytest.approx(normal.estimate)
    assert "bernstein" in bern.bound.method.lower() and "heuristic" not in bern.bound.method.lower()
    assert "a-priori range b = 16" in bern.bound.method
    assert bern.ci95[0] < normal.ci95[0] and bern.ci95[1] > normal.ci95[1]  # conservative: wider
