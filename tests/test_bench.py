"""Smoke tests of the benchmarks (``wdist bench critics|estimate|layers|toy``) at tiny sizes.

They check that each runs end to end and prints its table; the figures themselves are not
tested (they depend on the machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bench_helpers import result_payload

from wdist.bench import critics as bench_critics
from wdist.bench import estimate as bench_estimate
from wdist.bench import toy as bench_toy


def _rows(out: str) -> list[str]:
    return [
        ln
        for ln in out.splitlines()
        if ln.startswith("| ") and not ln.startswith("| critic |") and not ln.startswith("| setup |")
    ]


def test_bench_critics_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    js = tmp_path / "critics.json"
    threads = torch.get_num_threads()
    code = bench_critics.cli(
        [
            "--sizes",
            "32",
            "--width",
            "0.125",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--critics",
            "gp-dcgan",
            "bcop-dcgan",
            "--no-isolate",
            "--json",
            str(js),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _rows(out)
    assert [r.split("|")[1].strip() for r in rows] == ["gp-dcgan", "bcop-dcgan"]
    assert all("3x32x32" in r for r in rows)
    assert "peak RSS (MiB)" in out and "device: cpu" in out
    data = result_payload(js, "critics", "--sizes 32")
    assert [d["loss"] for d in data] == ["kr+gp", "kr"]
    assert all(d["steps_per_second"] > 0 and d["memory_mib"] >= 0 for d in data)
    assert torch.get_num_threads() == threads


def test_bench_critics_isolated_worker() -> None:
    """The default CPU path: one cell in a fresh process, its own peak RSS."""
    row = bench_critics._bench_isolated(
        dict(critic_name="gp-dcgan", size=8, width=0.0625, batch=4, steps=1, warmup=0, repeats=1, device="cpu"),
        threads=1,
    )
    assert row["error"] is None and row["memory_kind"] == "peak RSS (MiB)" and row["memory_mib"] >= 0
    assert row["threads"] == 1


def test_bench_critics_rejects_unknown_critic(capsys: pytest.CaptureFixture) -> None:
    assert bench_critics.cli(["--critics", "no-such-critic"]) == 2
    assert "unknown critic" in capsys.readouterr().err


def test_bench_estimate_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    js = tmp_path / "estimate.json"
    code = bench_estimate.cli(
        [
            "--setups",
            "digits",
            "--critics",
            "bcop-dcgan",
            "--steps",
            "8",
            "--eval-every",
            "4",
            "--n-eval",
            "100",
            "--width",
            "0.125",
            "--json",
            str(js),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _rows(out)
    assert (
        len(rows) == 1 and rows[0].split("|")[1].strip() == "digits" and rows[0].split("|")[2].strip() == "bcop-dcgan"
    )
    (row,) = result_payload(js, "estimate", "--setups digits")
    assert row["steps"] == 8 and row["evals"] == 2 and [p["step"] for p in row["curve"]] == [4, 8]
    assert row["settled_step"] in (4, 8)
    assert 0 < row["time_to_1pct_s"] <= row["curve"][-1]["wall_s"] + 1e-9
    assert row["train_time_to_1pct_s"] <= row["time_to_1pct_s"]


def test_time_to_within_picks_first_settled_evaluation() -> None:
    clock = bench_estimate.EvalClock()
    clock.t_start = 0.0
    lbs = [0.5, 0.99, 1.2, 0.995, 1.004, 1.0]  # settles (within 1% of 1.0) from the 4th point on
    curve = []
    for i, lb in enumerate(lbs):
        step = 10 * (i + 1)
        clock.evals.append({"step": step, "t_start": i + 0.9, "t_end": i + 1.0})
        curve.append({"step": step, "lower_bound": lb})
    res = bench_estimate.time_to_within(curve, clock)
    assert res["final"] == 1.0 and res["step"] == 40 and res["wall_s"] == pytest.approx(4.0)
    assert res["train_s"] == pytest.approx(4.0 - 4 * 0.1)


def test_smooth_images_are_deterministic(tmp_path: Path) -> None:
    import numpy as np

    a = np.load(bench_estimate.write_smooth_images(tmp_path / "a.npy", n=4))
    b = np.load(bench_estimate.write_smooth_images(tmp_path / "b.npy", n=4))
    assert a.shape == (4, 3, 32, 32) and a.dtype == np.uint8 and (a == b).all()


def test_bench_layers_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    layers = pytest.importorskip("wdist.bench.layers")
    out_json = tmp_path / "layers.json"
    code = layers.cli(
        [
            "--channels",
            "4",
            "--kernels",
            "3",
            "--sizes",
            "8",
            "--batch",
            "2",
            "--repeats",
            "1",
            "--layers",
            "conv",
            "bcop",
            "soc",
            "soc-grid",
            "--out",
            str(out_json),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert result_payload(out_json, "layers", "--layers conv bcop soc soc-grid")
    body = [ln.split() for ln in out.splitlines()]
    assert {"conv", "bcop", "soc", "soc-grid"} <= {ln[0] for ln in body if ln}


def test_bench_layers_has_the_modern_families(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    layers = pytest.importorskip("wdist.bench.layers")
    names = ["conv", "conv-s2", "aoc", "aoc-s2", "cayley", "aol", "sll", "cpl"]
    out_json = tmp_path / "layers.json"
    args = ["--channels", "4", "--kernels", "2", "3", "--sizes", "8", "--batch", "2", "--repeats", "1"]
    code = layers.cli([*args, "--layers", *names, "--out", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = result_payload(out_json, "layers")
    by = {(r["layer"], r["kernel"]): r for r in rows}
    assert set(by) == {(n, 2) for n in names if n not in ("sll", "cpl")} | {
        (n, 3) for n in names if n not in ("conv-s2", "aoc-s2")
    }
    # stride-2 rows are compared with the plain stride-2 convolution, the others with the stride-1 one
    assert by[("aoc-s2", 2)]["vs_conv"] == pytest.approx(by[("aoc-s2", 2)]["ms"] / by[("conv-s2", 2)]["ms"])
    assert by[("sll", 3)]["vs_conv"] == pytest.approx(by[("sll", 3)]["ms"] / by[("conv", 3)]["ms"])


def test_bench_layers_cpu_clock(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``--clock cpu`` times each step by the process's CPU time (the rows say so); on another device,
    or with an unknown clock, the run is refused before anything is built."""
    layers = pytest.importorskip("wdist.bench.layers")
    out_json = tmp_path / "layers.json"
    args = ["--channels", "4", "--kernels", "3", "--sizes", "8", "--batch", "2", "--repeats", "2", "--clock", "cpu"]
    code = layers.cli([*args, "--layers", "conv", "cayley", "sll", "--out", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "process CPU time" in out
    rows = result_payload(out_json, "layers")
    assert {r["clock"] for r in rows} == {"cpu"} and all(r["ms"] > 0 for r in rows)
    for clock, device in (("cpu", "cuda"), ("cycles", "cpu")):
        with pytest.raises(ValueError, match=f"clock={clock!r} on device {device!r}"):
            layers.run_layer_benchmark(device=device, clock=clock, channels=[4], kernels=[3], sizes=[8], batch=2)


def test_bench_toy_times_the_steps_of_wdist_estimate(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every timed run is a wdist.estimate of the file's configuration with the critic, steps and device
    replaced (and nothing but the bound computed); the timer sees every training step."""
    from wdist.config import parse_config

    toy = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"
    shared = parse_config(toy)
    cfg = bench_toy.timed_config(shared, "gp-mlp", 6, "cpu")
    assert (cfg.critic.name, cfg.train.loss, cfg.train.steps, cfg.train.eval_every) == ("gp-mlp", "wgan-gp", 6, 6)
    assert set(cfg.critic.options) <= {"width", "depth"} and cfg.toy is shared.toy  # the file's source, shared
    assert (cfg.eval.ot_samples, cfg.eval.empirical_lipschitz_samples, cfg.eval.train_subset) == (0, 0, False)
    timed: list[int] = []
    real_estimate = bench_toy.estimate

    def counting(cfg, **kwargs):  # noqa: ANN001, ANN202
        result = real_estimate(cfg, **kwargs)
        timed.append(len(kwargs["callbacks"][0].times))
        return result

    monkeypatch.setattr(bench_toy, "estimate", counting)
    code = bench_toy.cli(["--configs", str(toy), "--critics", "bjorck-mlp", "--steps", "6", "--warmup", "2",
                          "--repeats", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and timed == [6, 6]
    (row,) = [ln for ln in out.splitlines() if ln.startswith("| translation-2d |")]
    assert row.startswith("| translation-2d | bjorck-mlp |") and float(row.split("|")[3]) > 0
