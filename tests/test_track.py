"""wdist track on tiny settings: files, warm start, resume after a kill, one W&B run, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from wdist.cli import main
from wdist.errors import ConfigError, RunInterrupted
from wdist.tracking import CRITIC_FILE, checkpoint_series, default_snapshots, parse_step, track
from wdist.warmstart import head_name

SNAPSHOTS = sorted(default_snapshots().glob("*.pt"))
SERIES = [str(default_snapshots() / f"digits_wgan_gp_8_step{s:05d}.pt") for s in (100, 1000, 10000)]
TINY = [
    "--critic.name", "bjorck-mlp", "--critic.options", "{width: 16}", "--train.steps", "12",
    "--train.eval_every", "12", "--train.batch_size", "64", "--eval.n_eval", "100", "--eval.n_eval_q", "200",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--eval.train_subset", "false",
]  # fmt: skip


class InitialCritic(pl.Callback):
    """Records the critic's weights when each fit starts (after any warm start)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.states.append({k: v.detach().clone() for k, v in pl_module.critic.state_dict().items()})


class KillAtFit(pl.Callback):
    """Stops the ``n``-th fit at its first step, as a SIGTERM would (no result written)."""

    def __init__(self, n: int) -> None:
        self.n, self.fits = n, 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fits += 1
        if self.fits == self.n:
            raise RunInterrupted(15)


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("track") / "warm"
    spy = InitialCritic()
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    try:
        result = track(
            None, [*TINY, "--logger.kind", "wandb"], checkpoints=SERIES, warm_fresh_head=False, out=out,
            callbacks=[spy], quiet=True,
        )  # fmt: skip
    finally:
        mp.undo()
    return {"out": out, "result": result, "spy": spy}


def test_track_writes_json_csv_and_plot(warm: dict) -> None:
    out = warm["out"]
    data = json.loads((out / "track.json").read_text())
    assert data["complete"] and [p["gan_step"] for p in data["points"]] == [100, 1000, 10000]
    for p in data["points"]:
        assert p["certified"] and p["lower_bound_lo"] < p["lower_bound"] < p["lower_bound_hi"]
        assert (p["n_eval_p"], p["n_eval_q"]) == (100, 200)
    with open(out / "track.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lower_bound"]) for r in rows] == pytest.approx([p["lower_bound"] for p in data["points"]])
    assert (out / "track.png").stat().st_size > 1000
    assert [p["warm_started"] for p in data["points"]] == [False, True, True]


def test_each_checkpoint_is_its_own_estimate_on_fresh_heldout_draws(warm: dict) -> None:
    runs = warm["out"] / "runs"
    configs = [(runs / f"step_{s}" / "config.yaml").read_text() for s in (100, 1000, 10000)]
    for k, (text, path) in enumerate(zip(configs, SERIES)):
        assert path in text and f"heldout_draw: {k}" in text


def test_warm_start_loads_the_previous_critic(warm: dict) -> None:
    states = warm["spy"].states
    assert len(states) == 3
    for k, step in ((1, 100), (2, 1000)):
        previous = torch.load(warm["out"] / "runs" / f"step_{step}" / CRITIC_FILE, weights_only=True)
        assert states[k].keys() == previous.keys()
        assert all(torch.equal(states[k][key], previous[key]) for key in previous)
    first = torch.load(warm["out"] / "runs" / "step_100" / CRITIC_FILE, weights_only=True)
    assert not all(torch.equal(states[0][key], first[key]) for key in first)  # it trained


def test_cold_start_does_not(tmp_path: Path) -> None:
    spy = InitialCritic()
    track(None, TINY, checkpoints=SERIES[:2], warm_start=False, out=tmp_path / "cold", callbacks=[spy], quiet=True)
    previous = torch.load(tmp_path / "cold" / "runs" / "step_100" / CRITIC_FILE, weights_only=True)
    assert not all(torch.equal(spy.states[1][k], previous[k]) for k in previous)
    assert all(torch.equal(spy.states[1][k], spy.states[0][k]) for k in previous)  # the same fresh init


def test_default_warm_start_keeps_a_fresh_head_with_half_the_steps_at_4x_lr(tmp_path: Path) -> None:
    spy = InitialCritic()
    out = tmp_path / "head"
    track(None, TINY, checkpoints=SERIES[:2], out=out, callbacks=[spy], quiet=True)  # the defaults
    previous = torch.load(out / "runs" / "step_100" / CRITIC_FILE, weights_only=True)
    last = [k for k in previous if k.startswith("7.")]  # bjorck-mlp: nn.Sequential, its last Linear is "7"
    assert last and len(last) < len(previous)
    for key in previous:
        fresh = spy.states[0][key] if key in last else previous[key]  # the first checkpoint's fresh init
        assert torch.equal(spy.states[1][key], fresh), key
    assert not all(torch.equal(previous[k], spy.states[1][k]) for k in last)  # the trained last layer was not loaded
    assert json.loads((out / "track.json").read_text())["settings"]["warm_fresh_head"] is True
    points = json.loads((out / "track.json").read_text())["points"]
    assert [p["critic_steps"] for p in points] == [12, 6]  # TINY: train.steps 12
    cold_cfg, warm_cfg = (yaml.safe_load((out / "runs" / f"step_{s}" / "config.yaml").read_text()) for s in (100, 1000))
    assert warm_cfg["train"]["lr"] == pytest.approx(4 * cold_cfg["train"]["lr"])


def test_one_wandb_run_charts_the_track(warm: dict) -> None:
    runs = sorted((warm["out"] / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(runs[0])],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    chart = [(h["gan_step"], h["track/lower_bound"]) for h in history if "track/lower_bound" in h]
    assert chart == [(p["gan_step"], pytest.approx(p["lower_bound"])) for p in warm["result"].points]
    axis = [r["metric"] for r in records if r.get("type") == "metric"]
    assert any(m.get("glob_name") == "track/*" and m.get("step_metric") == "gan_step" for m in axis)


def test_killed_track_resumes_at_the_next_unfinished_checkpoint(warm: dict, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    with pytest.raises(RunInterrupted):
        track(None, TINY, checkpoints=SERIES, warm_fresh_head=False, out=out, callbacks=[KillAtFit(3)], quiet=True)
    partial = json.loads((out / "track.json").read_text())
    assert not partial["complete"] and len(partial["points"]) == 2
    kept = {s: (out / "runs" / f"step_{s}" / "result.json").read_bytes() for s in (100, 1000)}
    spy = InitialCritic()
    resumed = track(resume=out, callbacks=[spy], quiet=True)
    assert len(spy.states) == 1  # only the unfinished checkpoint trained
    assert all((out / "runs" / f"step_{s}" / "result.json").read_bytes() == kept[s] for s in kept)
    assert [p["lower_bound"] for p in resumed.points] == [p["lower_bound"] for p in warm["result"].points]


def test_other_settings_in_the_same_folder_are_refused(warm: dict, tmp_path: Path) -> None:
    out = tmp_path / "t"
    track(None, TINY, checkpoints=SERIES[:1], out=out, quiet=True)
    before = (out / "track.json").read_bytes()
    with pytest.raises(ConfigError, match="other settings"):
        track(None, TINY, checkpoints=SERIES[:2], out=out, quiet=True)
    assert (out / "track.json").read_bytes() == before


def test_a_finished_step_folder_of_another_checkpoint_is_not_reused(tmp_path: Path) -> None:
    """Without its track.json (a track killed before its first save, or the file removed), a step
    folder is reused only when its result was estimated on the same checkpoint file."""
    out = tmp_path / "t"
    track(None, TINY, checkpoints=[SERIES[1]], steps=[7], out=out, quiet=True)
    (out / "track.json").unlink()
    kept = (out / "runs" / "step_7" / "result.json").read_bytes()
    with pytest.raises(ConfigError, match=r"step01000\.pt', not of .*step10000\.pt"):
        track(None, TINY, checkpoints=[SERIES[2]], steps=[7], out=out, quiet=True)
    assert (out / "runs" / "step_7" / "result.json").read_bytes() == kept


def test_step_parsing() -> None:
    assert parse_step("G_step00100.pt") == 100
    assert parse_step("runs/netG_5000.pth") == 5000
    assert parse_step("digits_wgan_gp_8_step00300.pt") == 300
    assert parse_step("ckpt-epoch=12.ckpt") == 12
    with pytest.raises(ConfigError, match="--track.steps"):
        parse_step("G_8x8_1000.pt")
    with pytest.raises(ConfigError, match="no number"):
        parse_step("final.pt")


def test_explicit_steps_and_sorting(tmp_path: Path) -> None:
    series = checkpoint_series([SERIES[2], SERIES[0]], steps=[9, 3])
    assert [s for s, _ in series] == [3, 9] and str(series[0][1]) == SERIES[0]


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["track", *args])
    return code, capsys.readouterr().err


def test_bad_input_exits_2_with_one_clear_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _cli(["--out", str(tmp_path / "a"), "--track.checkpoints", str(tmp_path / "none*.pt")], capsys)
    assert code == 2 and "matches no file" in err
    bad = tmp_path / "G_final.pt"
    torch.save(torch.load(SERIES[0], weights_only=True), bad)
    code, err = _cli(["--out", str(tmp_path / "b"), "--track.checkpoints", SERIES[0], str(bad)], capsys)
    assert code == 2 and "G_final.pt" in err and "--track.steps" in err
    other = tmp_path / "G_step5.pt"
    state = torch.load(SERIES[0], weights_only=True)
    state["net.0.weight"] = torch.zeros(128, 16)
    torch.save(state, other)
    code, err = _cli(["--out", str(tmp_path / "c"), "--track.checkpoints", SERIES[0], str(other)], capsys)
    assert code == 2 and "G_step5.pt" in err and "net.0.weight" in err and "[128, 16]" in err
    code, err = _cli(["--out", str(tmp_path / "d"), "--track.checkpoints", *SERIES, "--track.steps", "1", "2"], capsys)
    assert code == 2 and "2 step(s) for 3 checkpoint(s)" in err
    code, err = _cli(["--out", str(tmp_path / "e"), "--track.warm_start", "maybe"], capsys)
    assert code == 2 and "maybe" in err
    assert not any((tmp_path / d / "track.json").exists() for d in "abcde")


def test_resume_with_other_settings_and_a_non_generator_q_are_refused(
    warm: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = (warm["out"] / "track.json").read_bytes()
    code, err = _cli(["--resume", str(warm["out"]), "--train.steps", "50", "--track.warm_lr", "0.1"], capsys)
    assert code == 2 and "--track.warm_lr" in err and "--train.steps" in err and "--resume DIR alone" in err
    assert (warm["out"] / "track.json").read_bytes() == before
    toy = str(Path(__file__).resolve().parents[1] / "configs" / "toy" / "gaussian-mixture-2d.yaml")
    code, err = _cli(["--config", toy, "--out", str(tmp_path / "t"), "--track.checkpoints", SERIES[0]], capsys)
    assert code == 2 and "must be a Generator source" in err and "got no q (a toy: problem" in err
    code, err = _cli(["--out", str(tmp_path / "u"), "--track.warm_lr", "inf"], capsys)
    assert code == 2 and "--track.warm_lr must be a positive learning rate; got inf" in err


def test_an_interrupted_track_says_how_to_continue_the_track(tmp_path: Path) -> None:
    from wdist.cli import _interrupted_line

    step_dir = tmp_path / "trk" / "runs" / "step_1000"
    line = _interrupted_line("track", RunInterrupted(15, step=7, checkpoint=step_dir / "last.ckpt", out=step_dir))
    assert f"wdist track --resume {tmp_path / 'trk'}" in line and "not complete" in line
    assert "wdist estimate" not in line


def test_shipped_snapshots_are_package_data() -> None:
    record = json.loads((default_snapshots() / "snapshots.json").read_text())
    files = [default_snapshots() / s["file"] for s in record["snapshots"]]
    assert [p.name for p in files] == [p.name for p in SNAPSHOTS] and len(files) == 5
    assert sum(p.stat().st_size for p in files) < 2_000_000
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert "weights/digits_track/*.pt" in pyproject and "weights/digits_track/*.json" in pyproject


def test_heldout_draw_keeps_the_finite_split_and_redraws_infinite_sides() -> None:
    from wdist.data import PairDataModule
    from wdist.sources import Gaussian, TensorSource

    p = TensorSource(torch.randn(300, 4, generator=torch.Generator().manual_seed(0)))
    q = Gaussian(dim=4)
    modules = [PairDataModule(p, q, 16, 50, seed=3, heldout_draw=k) for k in (0, 1, 2)]
    default = PairDataModule(p, q, 16, 50, seed=3)
    for dm in (*modules, default):
        dm.setup()
    assert torch.equal(default.test.q, modules[0].test.q)  # draw 0 is the run's own
    assert all(torch.equal(dm.test.p, modules[0].test.p) for dm in modules)
    assert not torch.equal(modules[1].test.q, modules[0].test.q)
    assert not torch.equal(modules[2].test.q, modules[1].test.q)
    # the select samples of an infinite side are redrawn alike, independently of the test samples
    assert all(torch.equal(dm.select.p, modules[0].select.p) for dm in modules)
    assert torch.equal(default.select.q, modules[0].select.q)
    assert not torch.equal(modules[1].select.q, modules[0].select.q)
    assert not any(torch.equal(dm.select.q, dm.test.q) for dm in modules)


def test_a_fresh_head_warm_start_of_a_critic_that_is_all_head_trains_cold(tmp_path: Path) -> None:
    """``cones`` is one layer: a fresh-head warm start would load nothing, so each checkpoint trains
    cold (``train.steps`` at ``train.lr``), its point says so, and its bound is the cold track's."""
    from wdist.warmstart import loads_weights

    args = [*TINY[4:], "--critic.name", "cones", "--critic.options", "{centres: 8}"]
    snapshots = SERIES[:2]
    warm = track(None, args, checkpoints=snapshots, out=tmp_path / "warm", quiet=True)
    cold = track(None, args, checkpoints=snapshots, out=tmp_path / "cold", warm_start=False, quiet=True)
    assert [p["warm_started"] for p in warm.points] == [False, False]
    assert [p["critic_steps"] for p in warm.points] == [p["critic_steps"] for p in cold.points] == [12, 12]
    assert [p["lower_bound"] for p in warm.points] == [p["lower_bound"] for p in cold.points]
    state = torch.load(tmp_path / "warm" / "runs" / f"step_{warm.points[0]['gan_step']}" / CRITIC_FILE)
    assert all(k.startswith("head.") for k in state) and not loads_weights(state, fresh_head=True)
    assert loads_weights(state, fresh_head=False)
    # a data-placed head is placed again even where the whole critic is asked for: cones trains cold
    whole = track(None, args, checkpoints=snapshots, out=tmp_path / "whole", warm_fresh_head=False, quiet=True)
    assert [p["warm_started"] for p in whole.points] == [False, False]
    assert [p["lower_bound"] for p in whole.points] == [p["lower_bound"] for p in cold.points]


@pytest.mark.parametrize(
    ("critic", "options", "shape", "placed", "fresh_head", "warm"),
    [
        ("cones", {"centres": 4}, (1, 8, 8), True, False, False),
        ("bjorck-cones", {"width": 8, "depth": 1, "centres": 4}, (1, 8, 8), True, False, True),
        ("bcop-cones", {"width": 0.25, "centres": 4}, (1, 8, 8), True, False, True),
        ("bcop-dcgan", {"width": 0.25}, (1, 8, 8), False, False, True),
        ("bjorck-mlp", {"width": 8}, (64,), False, False, True),
        ("bjorck-mlp", {"width": 8}, (64,), False, True, True),
    ],
)
def test_the_warm_start_rule(
    critic: str, options: dict, shape: tuple, placed: bool, fresh_head: bool, warm: bool
) -> None:
    """warm_init: the head is fresh when asked or when it is placed from data (the cone critics'
    PotentialHead); a warm start that would load nothing is a cold one (None)."""
    import critics
    from wdist.warmstart import load_init_state, places_head, warm_init

    trained = critics.build(critic, shape, **options)
    with torch.no_grad():
        for value in trained.parameters():
            value.add_(1.0)
    state = trained.state_dict()
    assert places_head(state) is placed
    init = warm_init(state, fresh_head)
    assert (init is not None) is warm
    if init is None:
        return
    assert init.fresh_head is (fresh_head or placed)
    torch.manual_seed(0)
    fresh = critics.build(critic, shape, **options)
    own = {k: v.clone() for k, v in fresh.state_dict().items()}
    load_init_state(fresh, init)
    head = head_name(fresh) + "."
    loaded = fresh.state_dict()
    for key, value in state.items():
        expected = own[key] if init.fresh_head and key.startswith(head) else value
        assert torch.equal(loaded[key], expected), key
