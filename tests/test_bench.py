"""Smoke tests of the benchmarks (``wdist bench critics|estimate|layers|toy``) at tiny sizes.

They check that each runs end to end and prints its table; the figures themselves are not
tested (they depend on the machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bench_helpers import result_payload, run_bench

import critics
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
    settings = "--sizes 32 --width 0.125 --steps 2 --warmup 1 --repeats 1 --no-isolate"
    out = run_bench("critics", f"{settings} --critics gp-dcgan bcop-dcgan --json {js}", capsys)
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
    settings = bench_critics.CellSettings(width=0.0625, batch=4, steps=1, warmup=0, repeats=1, device="cpu")
    row = bench_critics._bench_isolated("gp-dcgan", 8, settings, threads=1)
    assert row["error"] is None and row["memory_kind"] == "peak RSS (MiB)" and row["memory_mib"] >= 0
    assert row["threads"] == 1


def test_bench_critics_rejects_unknown_critic(capsys: pytest.CaptureFixture) -> None:
    assert bench_critics.cli(["--critics", "no-such-critic"]) == 2
    assert "unknown critic" in capsys.readouterr().err
    assert bench_critics.cli(["--critics", "bcop-cones:centres"]) == 2
    assert "'bcop-cones:centres'" in capsys.readouterr().err
    assert bench_critics.cli(["--critics", "bcop-cones:centers=1024"]) == 2  # a misspelt option: before any run
    err = capsys.readouterr().err
    assert "unknown option(s) centers for bcop-cones" in err and "centres" in err


def test_bench_critics_options() -> None:
    """``NAME:KEY=VALUE`` builds the critic with those options: a head of more centres has more
    parameters, by exactly its extra centres (features each) and offsets."""
    assert bench_critics.critic_spec("bcop-cones:centres=8,init=kmeans") == (
        "bcop-cones",
        {"centres": 8, "init": "kmeans"},
    )
    cells = {
        c: bench_critics.bench_one(
            f"bcop-cones:centres={c}",
            8,
            bench_critics.CellSettings(width=0.0625, batch=2, steps=1, warmup=0, repeats=1),
        )
        for c in (2, 4)
    }
    assert cells[4]["critic"] == "bcop-cones:centres=4"
    head = critics.build("bcop-cones", (3, 8, 8), width=0.0625, centres=2).head
    features = head.features
    cone_parts = sum(1 for name in head.heads if name in ("up", "down", "up-all", "down-all"))
    assert cells[4]["parameters"] - cells[2]["parameters"] == cone_parts * 2 * (features + 1)


def test_bench_estimate_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    js = tmp_path / "estimate.json"
    out = run_bench(
        "estimate",
        f"--setups digits --critics bcop-dcgan --steps 8 --eval-every 4 --n-eval 100 --width 0.125 --json {js}",
        capsys,
    )
    rows = _rows(out)
    assert (
        len(rows) == 1 and rows[0].split("|")[1].strip() == "digits" and rows[0].split("|")[2].strip() == "bcop-dcgan"
    )
    (row,) = result_payload(js, "estimate", "--setups digits")
    assert row["steps"] == 8 and row["evals"] == 2 and [p["step"] for p in row["curve"]] == [4, 8]
    assert row["settled_step"] in (4, 8)
    assert 0 < row["time_to_1pct_s"] <= row["curve"][-1]["wall_s"] + 1e-9
    assert row["train_time_to_1pct_s"] <= row["time_to_1pct_s"]
    # the table's bound is the run's result on the test split; the curve's last value is the select split's
    cells = [c.strip() for c in rows[0].split("|")]
    assert cells[3].startswith(f"{row['lower_bound']:.4f} [") and cells[4] == f"{row['final_curve_bound']:.4f}"


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
    pytest.importorskip("wdist.bench.layers")
    out_json = tmp_path / "layers.json"
    out = run_bench(
        "layers",
        f"--channels 4 --kernels 3 --sizes 8 --batch 2 --repeats 1 --layers conv bcop soc soc-grid --out {out_json}",
        capsys,
    )
    assert result_payload(out_json, "layers", "--layers conv bcop soc soc-grid")
    body = [ln.split() for ln in out.splitlines()]
    assert {"conv", "bcop", "soc", "soc-grid"} <= {ln[0] for ln in body if ln}


def test_bench_layers_has_the_modern_families(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    pytest.importorskip("wdist.bench.layers")
    names = ["conv", "conv-s2", "aoc", "aoc-s2", "cayley", "aol", "sll", "cpl"]
    out_json = tmp_path / "layers.json"
    args = f"--channels 4 --kernels 2 3 --sizes 8 --batch 2 --repeats 1 --out {out_json}"
    run_bench("layers", f"{args} --layers {' '.join(names)}", capsys)
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
    args = f"--channels 4 --kernels 3 --sizes 8 --batch 2 --repeats 2 --clock cpu --out {out_json}"
    out = run_bench("layers", f"{args} --layers conv cayley sll", capsys)
    assert "process CPU time" in out
    rows = result_payload(out_json, "layers")
    assert {r["clock"] for r in rows} == {"cpu"} and all(r["ms"] > 0 for r in rows)
    for clock, device in (("cpu", "cuda"), ("cycles", "cpu")):
        with pytest.raises(ValueError, match=f"clock={clock!r} on device {device!r}"):
            layers.run_layer_benchmark(device=device, clock=clock, channels=[4], kernels=[3], sizes=[8], batch=2)


def test_bench_layers_input_grad(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``--input-grad`` times the step of a layer whose input needs its gradient (every critic layer
    but the first): the step computes that gradient, the rows and the provenance say so."""
    layers = pytest.importorskip("wdist.bench.layers")
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    layers._step(conv, conv, x)
    assert x.grad is not None and x.grad.abs().sum() > 0
    out_json = tmp_path / "layers.json"
    args = ["--channels", "4", "--kernels", "3", "--sizes", "8", "--batch", "2", "--repeats", "1", "--input-grad"]
    assert layers.cli([*args, "--layers", "conv", "sll", "--out", str(out_json)]) == 0, capsys.readouterr().out
    rows = result_payload(out_json, "layers", "--input-grad")
    assert {r["input_grad"] for r in rows} == {True}
    assert "the input needs its gradient" in json.loads(out_json.read_text())["conditions"]


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
    import wdist.pipeline

    real_estimate = wdist.pipeline.estimate

    def counting(cfg, **kwargs):  # noqa: ANN001, ANN202
        result = real_estimate(cfg, **kwargs)
        timed.append(len(kwargs["callbacks"][0].times))
        return result

    monkeypatch.setattr(wdist.pipeline, "estimate", counting)
    code = bench_toy.cli(["--configs", str(toy), "--critics", "bjorck-mlp", "--steps", "6", "--warmup", "2",
                          "--repeats", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and timed == [6, 6]
    (row,) = [ln for ln in out.splitlines() if ln.startswith("| translation-2d |")]
    assert row.startswith("| translation-2d | bjorck-mlp |") and float(row.split("|")[3]) > 0


def test_bench_layers_runs(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``--runs N`` repeats the whole measurement: each row holds every run's ratio to that run's plain
    conv, their median and [smallest, largest], and the table shows the spread."""
    layers = pytest.importorskip("wdist.bench.layers")
    out_json = tmp_path / "layers.json"
    args = ["--channels", "4", "--kernels", "3", "--sizes", "8", "--batch", "2", "--repeats", "1", "--runs", "3"]
    assert layers.cli([*args, "--layers", "conv", "sll", "--out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "/conv [min, max]" in out and "medians over 3 whole runs" in out
    rows = {r["layer"]: r for r in result_payload(out_json, "layers", "--runs 3")}
    sll = rows["sll"]
    assert len(sll["vs_conv_runs"]) == len(sll["ms_runs"]) == 3 and rows["conv"]["vs_conv_runs"] == [1.0] * 3
    assert sll["vs_conv"] == sorted(sll["vs_conv_runs"])[1]
    assert sll["vs_conv_range"] == [min(sll["vs_conv_runs"]), max(sll["vs_conv_runs"])]
    assert layers.cli([*args[:-2], "--runs", "0", "--out", str(out_json)]) == 2
