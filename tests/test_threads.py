"""The thread policy: cores from affinity and cgroup quotas (fabricated files), the rules in their
order (an explicit ``train.threads`` always wins), the work estimate, the record in result.json,
and the command line's order of work (OpenMP wait policy before torch; config errors before Lightning)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch import nn

import critics
import wdist.threads as threads_module
from wdist.config import load_config
from wdist.cores import (
    Cores,
    affinity_count,
    available_cores,
    cgroup_cpu_limit,
    parse_cfs_quota,
    parse_cpu_max,
    prefer_passive_waiting,
)
from wdist.pipeline import build_critic, estimate
from wdist.threads import (
    SMALL_STEP_GFLOP,
    choose_threads,
    omp_num_threads,
    processes_per_node,
    run_threads,
    training_step_flops,
)

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "configs" / "toy" / "translation-2d.yaml"
TINY = ["--train.steps", "4", "--train.eval_every", "4", "--eval.n_eval", "64", "--eval.ot_samples", "0"]
TINY += ["--eval.empirical_lipschitz_samples", "0", "--critic.options", "{width: 16}"]


@pytest.fixture
def keep_torch_threads() -> Iterator[None]:
    """Runs set the process's torch thread count; put back the suite's one thread afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _never() -> float:
    raise AssertionError("the work was counted although an earlier rule decides")


# ---- cores: affinity and cgroup quotas -------------------------------------------------------


def test_cpu_max_and_cfs_quota_parsing() -> None:
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == pytest.approx(1.5)
    assert parse_cpu_max("50000") == pytest.approx(0.5)  # period defaults to 100 ms
    assert parse_cpu_max("") is None and parse_cpu_max("lots 100000") is None
    assert parse_cfs_quota("-1\n", "100000\n") is None
    assert parse_cfs_quota("200000\n", "100000\n") == pytest.approx(2.0)
    assert parse_cfs_quota("x", "100000") is None


def test_cgroup_v2_quota_of_a_parent_binds(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "user.slice" / "job").mkdir(parents=True)
    (root / "user.slice" / "job" / "cpu.max").write_text("max 100000\n")
    (root / "user.slice" / "cpu.max").write_text("250000 100000\n")
    proc = tmp_path / "cgroup_of_self"
    proc.write_text("0::/user.slice/job\n")
    assert cgroup_cpu_limit(root, proc) == pytest.approx(2.5)
    (root / "user.slice" / "job" / "cpu.max").write_text("120000 100000\n")  # the tightest wins
    assert cgroup_cpu_limit(root, proc) == pytest.approx(1.2)


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    job = root / "cpu,cpuacct" / "docker" / "abc"
    job.mkdir(parents=True)
    (job / "cpu.cfs_quota_us").write_text("50000\n")
    (job / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "cgroup_of_self"
    proc.write_text("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_limit(root, proc) == pytest.approx(0.5)


def test_no_cgroup_information_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "missing") is None
    proc = tmp_path / "cgroup_of_self"
    proc.write_text("0::/\n")  # the root of the hierarchy has no cpu.max
    assert cgroup_cpu_limit(tmp_path, proc) is None


def test_available_cores_is_the_tighter_of_affinity_and_quota() -> None:
    assert available_cores(affinity=8, quota=2.5).count == 2  # a fractional quota rounds down
    assert available_cores(affinity=2, quota=6.0).count == 2
    assert available_cores(affinity=2, quota=0.5).count == 1  # never below one
    assert available_cores(affinity=3, read_quota=False).count == 3
    assert "cgroup quota 2.5 CPUs" in available_cores(affinity=8, quota=2.5).describe()
    if hasattr(os, "sched_getaffinity"):
        assert affinity_count() == len(os.sched_getaffinity(0))
    assert 1 <= available_cores().count <= affinity_count()


def test_passive_waiting_unless_the_user_chose() -> None:
    env: dict[str, str] = {}
    assert prefer_passive_waiting(env) == "PASSIVE" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert prefer_passive_waiting(env) == "ACTIVE" and env["OMP_WAIT_POLICY"] == "ACTIVE"
    env = {"WDIST_OPENMP_DEFAULTS": "1"}
    assert prefer_passive_waiting(env) is None and "OMP_WAIT_POLICY" not in env


# ---- the rules ---------------------------------------------------------------------------------


def test_explicit_threads_win_over_every_other_rule() -> None:
    choice = choose_threads(
        3, omp_env="1", on_gpu=True, cores=Cores(1, 1, None), processes=4, step_gflop=_never
    )  # fmt: skip
    assert choice.count == 3 and choice.reason.startswith("train.threads=3")


def test_environment_then_gpu_then_cores_then_work() -> None:
    big, two = (lambda: 50.0), Cores(2, 2, None)
    four = Cores(4, 4, None)
    c = choose_threads("auto", omp_env="2", on_gpu=True, cores=two, processes=1, step_gflop=_never)
    assert c.count == 2 and "OMP_NUM_THREADS=2" in c.reason
    c = choose_threads("auto", omp_env=None, on_gpu=True, cores=four, processes=1, step_gflop=_never)
    assert c.count == 1 and "GPU" in c.reason
    c = choose_threads("auto", omp_env=None, on_gpu=False, cores=two, processes=2, step_gflop=_never)
    assert c.count == 1 and "1 core per process" in c.reason and "/ 2 processes" in c.reason
    c = choose_threads(None, omp_env=None, on_gpu=False, cores=four, processes=1, step_gflop=lambda: 0.5)
    assert c.count == 1 and c.reason.startswith("auto: 1 (small critic")
    c = choose_threads("auto", omp_env=None, on_gpu=False, cores=four, processes=2, step_gflop=big)
    assert c.count == 2 and c.reason.startswith("auto: 2 (")
    c = choose_threads("auto", omp_env="not-a-number", on_gpu=False, cores=four, processes=1, step_gflop=big)
    assert c.count == 4  # OpenMP ignores such a value, and so does the policy


def test_a_failed_count_falls_back_to_one_thread_and_says_so() -> None:
    def broken() -> float:
        raise RuntimeError("no flop formula")

    c = choose_threads("auto", omp_env=None, on_gpu=False, cores=Cores(4, 4, None), processes=1, step_gflop=broken)
    assert c.count == 1 and "could not be counted" in c.reason and "no flop formula" in c.reason


def test_omp_num_threads_and_processes_per_node() -> None:
    assert omp_num_threads(None) is None and omp_num_threads("4") == 4 and omp_num_threads("4,2") == 4
    assert omp_num_threads("0") is None and omp_num_threads("") is None
    assert processes_per_node(2, on_gpu=False) == 2
    assert processes_per_node([0, 1, 3], on_gpu=True) == 3
    assert processes_per_node("3", on_gpu=False) == 3 and processes_per_node("0,1", on_gpu=True) == 2
    assert processes_per_node("auto", on_gpu=False) == 1


# ---- the work estimate -------------------------------------------------------------------------


def test_step_flops_of_a_dense_layer_match_the_formula() -> None:
    critic = nn.Sequential(nn.Flatten(), nn.Linear(64, 32))
    per_sample = 2 * 64 * 32  # one multiply and one add per weight
    assert training_step_flops(critic, (1, 8, 8), 128, "kr") == pytest.approx(3 * 2 * 128 * per_sample)
    assert training_step_flops(critic, (1, 8, 8), 128, "wgan-gp") == pytest.approx(3 * 4 * 128 * per_sample)


def test_step_flops_include_the_weight_construction_once() -> None:
    """A Björck layer orthonormalises its weight in every training forward: that cost is counted
    once per step, not once per sample."""
    critic = critics.build("bjorck-mlp", (8,), width=32, depth=2)
    small, large = (training_step_flops(critic, (8,), b, "kr") for b in (1, 1000))
    plain = 3 * 2 * (2 * 8 * 32 + 2 * 32 * 32 + 2 * 32 * 1)  # the matrix-vector products of one sample
    assert small > 10 * plain  # the construction dominates a tiny batch
    assert large - small == pytest.approx(999 * plain, rel=1e-6)  # and the rest scales with the samples


def test_the_default_critic_is_small_and_a_full_width_image_critic_is_not() -> None:
    default = critics.build("bcop-dcgan", (1, 8, 8), width=0.25)
    assert training_step_flops(default, (1, 8, 8), 128, "kr") / 1e9 < SMALL_STEP_GFLOP
    image = critics.build("gp-dcgan", (3, 32, 32))
    assert training_step_flops(image, (3, 32, 32), 64, "wgan-gp") / 1e9 >= SMALL_STEP_GFLOP


def test_run_threads_counts_the_runs_critic_and_leaves_it_and_the_random_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "available_cores", lambda: Cores(2, 2, None))
    cfg = load_config(TOY, ["--trainer.accelerator", "cpu"])
    critic = build_critic(cfg, (2,)).eval()
    weights = {k: v.clone() for k, v in critic.state_dict().items()}
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = critic(x)
    state = torch.get_rng_state()
    choice = run_threads(cfg, (2,), critic)
    assert torch.equal(state, torch.get_rng_state())
    assert not critic.training and critic.state_dict().keys() == weights.keys()
    assert all(torch.equal(v, weights[k]) for k, v in critic.state_dict().items())
    with torch.no_grad():
        assert torch.equal(critic(x), before)
    assert choice.count == 1 and choice.reason.startswith("auto: 1 (small critic")
    ddp = load_config(TOY, ["--trainer.accelerator", "cpu", "--trainer.devices", "2"])
    assert "/ 2 processes" in run_threads(ddp, (2,), critic).reason


def test_a_critic_is_built_once_per_run_with_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread choice counts the run's own critic: no second critic is built for it, and the one
    critic is built with one torch thread whatever the count training then uses."""
    import wdist.assembly as assembly_module

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "available_cores", lambda: Cores(2, 2, None))
    real = critics.build
    built: list[int] = []
    monkeypatch.setattr(critics, "build", lambda *a, **k: built.append(torch.get_num_threads()) or real(*a, **k))
    cfg = load_config(TOY, ["--trainer.accelerator", "cpu", "--train.threads", "2"])
    threads = torch.get_num_threads()
    try:
        run = assembly_module.build_run(cfg, cfg.sides())
        assert torch.get_num_threads() == 2 == run.threads.count
    finally:
        torch.set_num_threads(threads)
    assert built == [1]


# ---- the record in result.json -------------------------------------------------------------------


def test_explicit_threads_are_applied_and_recorded(tmp_path: Path, keep_torch_threads: None) -> None:
    assert os.environ.get("OMP_NUM_THREADS") == "1"  # set by conftest: the explicit key must beat it
    result = estimate(TOY, [*TINY, "--train.threads", "2"], out=tmp_path, quiet=True)
    assert torch.get_num_threads() == 2
    assert result.run.threads["count"] == 2 and result.run.threads["reason"].startswith("train.threads=2")
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["run"]["threads"] == result.run.threads and saved["run"]["config"]["train"]["threads"] == 2
    assert "2 threads" in saved["run"]["device"]


def test_auto_threads_are_recorded_with_their_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_torch_threads: None
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module, "available_cores", lambda: Cores(2, 2, None))
    estimate(TOY, TINY, out=tmp_path, quiet=True)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["run"]["threads"]["count"] == 1 and saved["run"]["threads"]["reason"].startswith(
        "auto: 1 (small critic"
    )
    assert saved["run"]["config"]["train"]["threads"] == "auto"
    assert "openmp_wait_policy" in saved["run"]["threads"]


# ---- the command line's order of work ----------------------------------------------------------------


def _python(code: str, env_drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_drop}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)


@pytest.mark.parametrize(
    ("args", "code", "stream", "said"),
    [
        (["estimate", "--train.stpes", "1"], "2", "stderr", "Did you mean 'train.steps'?"),
        (["estimate", "--help"], "0", "stdout", "--train.threads"),
    ],
    ids=["a config typo is refused", "estimate --help"],
)
def test_answered_before_lightning_is_imported(args: list[str], code: str, stream: str, said: str) -> None:
    out = _python(
        f"import sys; from wdist.cli import main\nrc = main({args!r})\n"
        "print(rc, 'pytorch_lightning' in sys.modules, 'torch._dynamo' in sys.modules)"
    )
    # nor torch.compile's machinery (about 1.5 s): the certificate rules know its wrapper only once it is loaded
    assert out.stdout.split()[-3:] == [code, "False", "False"], out.stderr
    assert said in getattr(out, stream)


def test_the_wait_policy_is_set_before_torch_is_loaded() -> None:
    out = _python(
        "import os, sys; from wdist.cli import main\n"
        "main(['--help'])\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)",
        env_drop=("OMP_WAIT_POLICY", "WDIST_OPENMP_DEFAULTS"),
    )
    assert out.stdout.split()[-2:] == ["PASSIVE", "False"], out.stderr


# ---- the spare cores ------------------------------------------------------------------------------


def test_references_solved_beside_training_are_the_references_solved_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_torch_threads: None
) -> None:
    import wdist.references as references_module

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with_references = [*TINY, "--eval.ot_samples", "48", "--eval.ot_floor", "true"]
    real = references_module.in_background
    results, beside = {}, {}
    for cores in (1, 4):  # one core: nothing spare, solved after training; four: three spare
        monkeypatch.setattr(threads_module, "available_cores", lambda c=cores: Cores(c, c, None))
        started: list[int] = []
        monkeypatch.setattr(
            references_module, "in_background", lambda *a, **k: started.append(1) or real(*a, **k)
        )  # fmt: skip
        results[cores] = estimate(TOY, with_references, out=tmp_path / str(cores), quiet=True)
        beside[cores] = bool(started)
    assert beside == {1: False, 4: True}
    one, four = results[1], results[4]
    assert one.run.threads["count"] == four.run.threads["count"] == 1
    assert one.run.threads["spare_cores"] == 0 and four.run.threads["spare_cores"] == 3
    assert one.references.empirical_ot_w1 is not None and one.references.empirical_ot_floor is not None
    assert (four.references.empirical_ot_w1, four.references.empirical_ot_floor) == (
        one.references.empirical_ot_w1,
        one.references.empirical_ot_floor,
    )
    assert four.lower_bound == one.lower_bound  # training did not see the references being solved


def test_a_reference_solved_in_the_background_hands_its_error_to_the_caller() -> None:
    from wdist.background import in_background
    from wdist.ot import OTError
    from wdist.references import ReferenceSamples, solve_references

    good = ReferenceSamples(torch.zeros(4, 3), torch.ones(4, 3))
    assert in_background(solve_references, good, name="test")() == solve_references(good)
    bad = ReferenceSamples(torch.zeros(4, 3), torch.ones(4, 5))  # items of different sizes
    wait = in_background(solve_references, bad, name="test")
    with pytest.raises(OTError):
        wait()
