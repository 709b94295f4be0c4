"""Help and parse errors start no work: no source, critic or Trainer is built and no file is written.

Every command's ``--help`` (with and without ``--config``) and a misspelt key are run through the
console script's entry point from an empty working directory while constructions are counted:
every registered source, toy problem and known-W1 pair (their ``__init__``), critics (``critics.build``)
and Lightning Trainers (``pl.Trainer.__init__``). Nothing is timed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import pytorch_lightning as pl

import critics
from wdist.bench import BENCHES
from wdist.cli import USAGE, main
from wdist.problems import PAIRS, TOY_PROBLEMS
from wdist.sources import SOURCES

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy" / "translation-2d.yaml")
COMPARE = str(ROOT / "configs" / "compare" / "digits.yaml")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """Counts of what a command builds, from an empty working directory (``tmp_path/cwd``)."""
    counts = {"source": 0, "critic": 0, "trainer": 0}

    def counting(init):
        @functools.wraps(init)  # keeps the signature that jsonargparse reads
        def wrapped(self, *args, **kwargs):
            counts["source"] += 1
            return init(self, *args, **kwargs)

        return wrapped

    for cls in {*SOURCES.values(), *TOY_PROBLEMS.values(), *PAIRS.values()}:
        for klass in cls.__mro__:  # the class whose __init__ this one runs
            if "__init__" in vars(klass):
                monkeypatch.setattr(cls, "__init__", counting(vars(klass)["__init__"]))
                break
    real_build, real_init = critics.build, pl.Trainer.__init__

    def build(*args, **kwargs):
        counts["critic"] += 1
        return real_build(*args, **kwargs)

    def trainer_init(self, *args, **kwargs):
        counts["trainer"] += 1
        return real_init(self, *args, **kwargs)

    monkeypatch.setattr(critics, "build", build)
    monkeypatch.setattr(pl.Trainer, "__init__", trainer_init)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return counts


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's own --help (the benchmarks) exits
        return int(stop.code or 0)


def test_the_counters_count(counted: dict[str, int], tmp_path: Path) -> None:
    """The fixture sees a real build: a parse that succeeds builds the sources and the critic."""
    from wdist.config import load_config

    cfg = load_config(TOY, ["--train.steps", "1"])
    critics.build(cfg.critic.name, (2,), **cfg.critic.options)
    assert counted["source"] >= 1 and counted["critic"] == 1


HELP_COMMANDS = [
    ["--help"],
    ["-h"],
    ["estimate", "--help"],
    ["estimate", "--config", TOY, "--help"],
    ["exact", "--help"],
    ["exact", "--config", TOY, "--help"],
    ["compare", "--help"],
    ["compare", "--config", COMPARE, "--help"],
    ["compare", "--config", COMPARE, "--out", "runs/x", "--help"],
    ["track", "--help"],
    ["track", "--resume", "somewhere", "--help"],
    ["bench", "--help"],
    *[["bench", name, "--help"] for name in BENCHES],
]


@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=lambda a: " ".join(Path(x).name for x in a))
def test_help_starts_no_work(argv: list[str], counted: dict[str, int], capsys: pytest.CaptureFixture) -> None:
    code = _run(argv)
    out = capsys.readouterr().out
    assert code == 0
    assert "usage" in out.lower()
    assert counted == {"source": 0, "critic": 0, "trainer": 0}
    assert not list(Path.cwd().iterdir()), "help wrote files"


def test_wdist_help_lists_every_command_and_benchmark(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in USAGE:
        assert f"wdist {command}" in out
    assert "{" + ",".join(BENCHES) + "}" in out
    assert {"tightness", "startup", "contention"} <= set(BENCHES)


@pytest.mark.parametrize(
    "argv, listed",
    [
        (["estimate", "--critic.option.width", "1"], "Allowed keys in 'critic': critic.name, critic.options."),
        (["estimate", "--critic.opt", "{width: 1}"], "Allowed keys in 'critic': critic.name, critic.options."),
        (["estimate", "--seeds", "[0]"], "Allowed keys: critic, eval, logger, out, p, q, seed, toy, train, trainer."),
        (["compare", "--config", COMPARE, "--sed", "[0]"], "Allowed keys: critic, critics, eval, logger, out, p, q, "),
        (["compare", "--config", COMPARE, "--train.stepz", "3"], "Allowed keys in 'train': train.average, train.batch"),
    ],
)
def test_parse_errors_list_user_keys_and_build_nothing(
    argv: list[str], listed: str, counted: dict[str, int], capsys: pytest.CaptureFixture
) -> None:
    """A misspelt key (never taken as an abbreviation of a real one) exits 2 with the keys allowed
    where it was written: never an empty list, never an internal option; nothing is built or written."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert listed in err and "print_" not in err and ": ." not in err
    assert counted == {"source": 0, "critic": 0, "trainer": 0}
    assert not list(Path.cwd().iterdir())


def test_compare_takes_its_own_keys_as_overrides() -> None:
    """--seeds and --critics replace the file's; the rest apply to the shared estimate config."""
    from wdist.compare_spec import read_comparison

    name, spec, base, rest = read_comparison(
        COMPARE, ["--seeds", "[3]", "--critics=[{label: b, name: bcop-dcgan}]", "--train.steps", "7"]
    )
    assert name == "digits" and spec.seeds == [3] and [c.label for c in spec.critics] == ["b"]
    assert rest == ["--train.steps", "7"] and "critics" not in base and "seeds" not in base
