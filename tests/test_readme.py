"""Every command shown in README.md and docs/*.md is valid as written, and the cheap ones run.

* The set-up lines (venv, ``pip install``, ``python -m pytest -q``, ``mkdocs build``) are what CI
  runs: ``.ci/run`` must contain the same commands, so the two cannot drift. The README opens with
  the two commands (install and run the default job; install and run the tests) and stays short.
* Every ``wdist ...`` line of a ```bash block of any of those pages is parsed by the real command
  line (``wdist.cli:main``; a benchmark by its own ``argparse`` parser) with the work itself
  replaced by a stop, so every option and config key of it is checked in CI (exit 2 otherwise).
* The cheap ones (estimate, exact, compare, track) also run, in-process, with fast overrides
  appended (later overrides win) and every ``--out``/``--resume``/``--json`` moved into a
  temporary folder; one command also runs through the installed ``wdist`` script itself. Each
  benchmark command runs on tiny settings only under ``-m slow``: the benchmarks have their own
  smoke tests (tests/test_bench.py, test_bench_cpu.py, test_cli.py, test_pairs.py).
* Commands that need data, checkpoints or GPUs this machine does not have must fail with one clear
  error naming what is missing (exit code 2), or be skipped with the reason in ``SKIPPED``.
  The 2-process CPU DDP line is run by tests/test_ddp.py (``COVERED``; checked to use the same
  config and options).
* ``python -m generators.train_digits`` runs with ``--steps 2`` into a temporary file.
* The Python API block (docs/python-api.md) runs, with two adaptations that are asserted to match
  the text: fewer training steps, and ``random_weights=True`` instead of ``checkpoint="netG.pth"``
  (the published file is not here; without either the load is refused). The W1Monitor block (a
  whole Lightning GAN, docs/tracking.md) is run by tests/test_monitor.py.
* The YAML block of docs/bring-your-own.md is replayed as a new user would: saved as
  ``experiment/my.yaml`` beside a uint8 ``.npy`` of 600 images and a DCGAN-style generator's
  checkpoint, run with ``wdist estimate --config experiment/my.yaml`` from the folder holding the
  generator's package (fast settings appended), first time, with the image default critic.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

FAST_ESTIMATE = [
    "--train.steps",
    "4",
    "--train.eval_every",
    "2",
    "--eval.n_eval",
    "64",
    "--eval.ot_samples",
    "64",
    "--eval.empirical_lipschitz_samples",
    "32",
    "--quiet",
]
FAST_EXACT = ["--eval.ot_samples", "64"]
#: A track of two shipped snapshots with a tiny critic (later options win, --track.* included).
FAST_TRACK = [
    "--critic.name", "bjorck-mlp", "--critic.options", "{width: 16}", "--train.steps", "4",
    "--train.eval_every", "2", "--track.warm_steps", "2", "--eval.n_eval", "64", "--eval.ot_samples", "0",
    "--eval.empirical_lipschitz_samples", "0", "--quiet", "--track.checkpoints",
    "generators/weights/digits_track/digits_wgan_gp_8_step00100.pt",
    "generators/weights/digits_track/digits_wgan_gp_8_step10000.pt",
]  # fmt: skip
FAST_BENCH = ["--steps", "3", "--warmup", "1", "--repeats", "1"]
FAST_BENCH_BY_NAME = {
    "toy": FAST_BENCH,
    "layers": ["--channels", "4", "--kernels", "3", "--sizes", "8", "--batch", "2", "--repeats", "1"],
    "critics": [
        "--sizes",
        "32",
        "--width",
        "0.125",
        "--batch",
        "4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--no-isolate",
        "--critics",
        "gp-dcgan",
    ],
    "estimate": [
        "--setups",
        "digits",
        "--critics",
        "bcop-dcgan",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--n-eval",
        "64",
        "--width",
        "0.125",
    ],
}
FAST_BENCH_BY_NAME["contention"] = ["--settings", "1", "--competitors", "0", "--repeats", "1", "--", *FAST_ESTIMATE]
FAST_BENCH_BY_NAME["startup"] = ["--repeats", "1", "--", *FAST_ESTIMATE]
BENCH_OUTPUT = {"toy": "steps/s", "layers": "ms", "critics": "steps/s", "estimate": "time to 1%"}
BENCH_OUTPUT.update({"contention": "idle: wall (train) s", "startup": "of which not training"})
FAST_BENCH_BY_NAME["tightness"] = [
    "--resize", "0", "--limit", "200", "--critics", "bcop-dcgan", "--constructions", "translation", "anchors",
    "--steps", "3", "--n-eval", "40", "--batch-size", "16", "--seeds", "0",
]  # fmt: skip
BENCH_OUTPUT["tightness"] = "| construction | critic |"
#: The funnel pairs on vectors (``--source cube``): a small cell with the cone critic.
FAST_TIGHTNESS_VECTORS = [
    "--dim", "8", "--funnels", "4", "--items", "600", "--critics", "cones", "--steps", "3", "--n-eval", "40",
    "--batch-size", "16", "--seeds", "0",
]  # fmt: skip

#: README command lines that are not run here, and why (none at present).
SKIPPED: dict[str, str] = {}

#: README commands covered by another test that runs them (the test file must contain the same
#: config and options, checked below, so the two cannot drift).
COVERED = {
    "tests/test_ddp.py": "a real 2-process CPU DDP run (Lightning re-launches the script per rank, which "
    "cannot happen inside pytest's own process); tests/test_ddp.py runs this command through wdist.cli",
}

#: README set-up segments that CI runs in an equivalent form, and why they are equivalent.
SETUP_EQUIVALENT = {
    "python3 -m venv .venv": "CI: python3 -m venv .venv-ci (a fresh environment under another name)",
    ". .venv/bin/activate": "CI: source .venv-ci/bin/activate",
    "pip install -e .": "CI installs the same package with the test extras: pip install -e '.[test]'",
}


# ---------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------

#: The pages whose commands are checked: the README and every page of the documentation.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: Longest the README may be: what it is, what the number means, install, a quick tour, links.
README_MAX_LINES = 300


def _page_blocks(lang: str, page: Path) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def _blocks(lang: str) -> list[str]:
    return [block for page in PAGES for block in _page_blocks(lang, page)]


def _commands(block: str) -> list[str]:
    """Every command of a ```bash block: comments dropped, ``&&`` chains split."""
    out = []
    for line in block.splitlines():
        tokens = shlex.split(line, comments=True)
        if not tokens:
            continue
        current: list[str] = []
        for tok in tokens + ["&&"]:
            if tok == "&&":
                if current:
                    out.append(shlex.join(current))
                current = []
            else:
                current.append(tok)
    return out


def _segments() -> dict[str, str]:
    """Every distinct command of every page, with the first page that shows it."""
    out: dict[str, str] = {}
    for page in PAGES:
        for block in _page_blocks("bash", page):
            for command in _commands(block):
                out.setdefault(command, str(page.relative_to(ROOT)))
    return out


def _option(tokens: list[str], name: str) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens and tokens.index(name) + 1 < len(tokens) else None


def _env_of(tokens: list[str]) -> dict[str, str]:
    """Leading ``VAR=value`` assignments of a shell command."""
    env = {}
    for tok in tokens:
        if re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tok):
            key, _, value = tok.partition("=")
            env[key] = value
        else:
            break
    return env


def _strip_env(tokens: list[str]) -> list[str]:
    return tokens[len(_env_of(tokens)) :]


def _needs_data(config: str | None) -> bool:
    return config is not None and any(k in config for k in ("cifar10", "stl10"))


def classify(command: str) -> tuple[str, str]:
    """(kind, reason) of one command of the README or the docs."""
    if command in SKIPPED:
        return "skip", SKIPPED[command]
    t = _strip_env(shlex.split(command))
    if t[:3] == ["python3", "-m", "venv"] or t[0] in (".", "source") or t[:2] == ["pip", "install"]:
        return "setup", "installation, run by .ci/run"
    if t[:3] == ["python", "-m", "pytest"] and t[3:] != ["-q"]:
        return "pytest-selection", "another selection of the suite that .ci/run runs (docs/development.md)"
    if t[:3] == ["python", "-m", "pytest"]:
        return "setup", "the test command, run by .ci/run"
    if t[:2] == ["mkdocs", "build"]:
        return "setup", "the documentation's strict build, run by .ci/run"
    if t[:2] == ["mkdocs", "serve"]:
        return "serve", "serves the pages until stopped; .ci/run builds the same pages with mkdocs build --strict"
    if t[0] == "wdist":
        if "--resume" in t:
            return (
                "fails",
                "resumes a run folder that does not exist here; tests/test_resume.py kills and resumes a real run",
            )
        if _needs_data(_option(t, "--config")):
            return "needs-data", "needs the CIFAR-10 / STL-10 data, a published checkpoint (and GPUs, or nodes)"
        if _option(t, "--trainer.strategy") == "ddp" and _option(t, "--trainer.accelerator") == "cpu":
            return "covered", COVERED["tests/test_ddp.py"]
        if t[1] == "bench" and (_option(t, "--device") == "cuda" or _option(t, "--accelerator") in ("gpu", "cuda")):
            if torch.cuda.is_available():
                return "run", ""
            return "needs-gpu", "a GPU benchmark: without CUDA it must stop with a clear error"
        return "run", ""
    if t[:3] == ["python", "-m", "generators.train_digits"]:
        return "train-digits", "run with --steps 2 into a temporary file"
    return "unknown", ""


def _id(command: str) -> str:
    return re.sub(r"[^\w./=-]+", "_", command)[:90]


PAGE_OF = _segments()
SEGMENTS = list(PAGE_OF)
#: Every ``wdist`` command whose options can be checked here (the others need a folder or data
#: that is not here, and are checked to fail clearly instead).
WDIST_PARSE = [c for c in SEGMENTS if classify(c)[0] in ("run", "covered", "needs-gpu")]


def _is_bench(command: str) -> bool:
    return shlex.split(command)[:2] == ["wdist", "bench"]


#: The commands that run here; a benchmark's full command runs (on tiny settings) only under -m slow.
WDIST_RUN = [
    pytest.param(c, marks=pytest.mark.slow) if _is_bench(c) else c for c in SEGMENTS if classify(c)[0] == "run"
]
WDIST_FAIL = [c for c in SEGMENTS if classify(c)[0] in ("fails", "needs-data", "needs-gpu")]


#: Options whose value the tests move under the test's own temporary folder (written, never read).
REDIRECTED = ("--out", "--resume", "--json")
#: Options naming a commit of this repository, exported by the command itself into a temporary folder.
COMMIT_OPTIONS = ("--before-commit", "--tree-commit")


def _redirect(tokens: list[str], tmp: Path) -> list[str]:
    """Move --out / --resume folders and --json files (relative in the README) under ``tmp``."""
    out = list(tokens)
    for opt in REDIRECTED:
        if opt in out:
            i = out.index(opt) + 1
            out[i] = str(tmp / out[i].lstrip("/"))  # absolute ones too (/shared/runs/...)
    return out


def _has_commit(commit: str) -> bool:
    """Whether this clone holds ``commit`` (a shallow clone may not)."""
    probe = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    return probe.returncode == 0


def _available_commits(tokens: list[str]) -> list[str]:
    """The command with each commit option kept when this clone has the commit, else replaced by
    ``HEAD`` (the same export path, run on a commit every clone has; a shallow CI clone lacks
    history)."""
    out = list(tokens)
    for opt in COMMIT_OPTIONS:
        if opt in out:
            i = out.index(opt) + 1
            if not _has_commit(out[i]):
                out[i] = "HEAD"
    return out


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------


def test_readme_opens_with_the_two_commands_and_stays_short() -> None:
    lines = README.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    first, second = [_commands(b) for b in _page_blocks("bash", ROOT / "README.md")[:2]]
    assert first[-1].startswith("wdist estimate") and any(c.startswith("pip install -e .") for c in first)
    assert second[-1] == "python -m pytest -q" and "pip install -e '.[test,docs]'" in second


def test_readme_links_resolve_inside_the_clone() -> None:
    """The README's relative links (into docs/) name files of the clone; mkdocs --strict checks the
    links between the pages themselves."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    relative = [link for link in links if "://" not in link]
    assert len(relative) >= 10
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_the_docs_have_the_expected_blocks() -> None:
    assert len(SEGMENTS) >= 10, SEGMENTS
    assert any(c.startswith("wdist estimate") for c in SEGMENTS)
    assert sum("wdist.estimate(" in b for b in _blocks("python")) == 1
    assert sum("W1Monitor(" in b for b in _blocks("python")) == 1
    assert sum("class_path: TensorFile" in b for b in _blocks("yaml")) == 1
    assert {page for page in PAGE_OF.values()} >= {"README.md", "docs/command-line.md", "docs/how-tight.md"}


def test_every_readme_command_is_accounted_for() -> None:
    unknown = [f"{PAGE_OF[c]}: {c}" for c in SEGMENTS if classify(c)[0] == "unknown"]
    assert not unknown, f"commands of the docs this test does not know how to check: {unknown}"


def test_setup_commands_are_what_ci_runs() -> None:
    ci_lines = [shlex.split(line, comments=True) for line in CI_RUN.splitlines()]
    ci = [shlex.join(t) for t in ci_lines if t]
    for command in SEGMENTS:
        if classify(command)[0] != "setup":
            continue
        if command in SETUP_EQUIVALENT:
            continue
        assert any(line == command or line.startswith(command + " ") for line in ci), (
            f"{PAGE_OF[command]}: set-up command {command!r} is not in .ci/run; CI must run what the docs show"
        )
    # and the equivalents really are there in their CI form
    assert any(line.startswith("python3 -m venv ") for line in ci)
    assert any(line.startswith("source ") and line.endswith("/bin/activate") for line in ci)
    assert "pip install -e '.[test,docs]'" in ci
    assert any(line.startswith("mkdocs build --strict") for line in ci), ".ci/run builds the docs, warnings as errors"


def _inside_the_clone(token: str) -> bool:
    """Whether a relative path-like token stays inside the clone (no ``..`` leading out of it)."""
    return (ROOT / token).resolve().is_relative_to(ROOT)


def test_no_readme_command_reads_a_path_outside_the_clone() -> None:
    """Every absolute path in a command of the README or the docs is an output the tests move into
    their own folder; no relative path leads out of the clone; nothing may need a folder an earlier
    run left behind (``/tmp/...``); every config file named exists in the clone."""
    checked = 0
    for command in SEGMENTS:
        tokens = _strip_env(shlex.split(command))
        for i, tok in enumerate(tokens):
            if tok.startswith("/") or tok.startswith("~"):
                where = f"{PAGE_OF[command]}: {command!r} reads {tok!r}, outside the clone"
                assert i > 0 and tokens[i - 1] in REDIRECTED, where
            elif "/" in tok and not tok.startswith(("-", "{", "[", "'", "http")) and "=" not in tok:
                assert _inside_the_clone(tok), f"{PAGE_OF[command]}: {command!r} names {tok!r}, outside the clone"
                checked += 1
        config = _option(tokens, "--config")
        if config is not None and tokens[0] == "wdist":
            assert (ROOT / config).is_file(), f"{PAGE_OF[command]}: {command!r} names a config that is not in the clone"
    assert checked >= 10  # the rule above saw the relative paths


def test_console_script_entry_point() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^wdist = "wdist\.cli:main"$', text, flags=re.M), "README's `wdist` is wdist.cli:main"


class _Parsed(BaseException):
    """Raised where a command's work would begin: everything before it (the command line's own
    parsing and validation) has passed. A BaseException, so the CLI's error handling lets it through."""


def _stop(*args: object, **kwargs: object) -> None:
    raise _Parsed()


def _parse_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the work of every command by :class:`_Parsed`, after the validation it does first:
    ``estimate`` validates its config before the pipeline (cli.py); ``compare`` reads and checks its
    comparison file; ``track`` checks its series and config before preparing its folder; ``exact``
    loads its config; a benchmark parses its options with its own argparse parser."""
    import wdist.compare
    import wdist.pipeline
    import wdist.references
    import wdist.tracking
    from wdist.compare_spec import parse_comparison

    def compare_parsed(config: str, overrides: list[str], **kwargs: object) -> None:
        parse_comparison(config, overrides)
        _stop()

    monkeypatch.setattr(wdist.pipeline, "estimate", _stop)
    monkeypatch.setattr(wdist.compare, "compare", compare_parsed)
    monkeypatch.setattr(wdist.tracking, "prepare_output_dir", _stop)
    monkeypatch.setattr(wdist.references, "exact_report", _stop)
    parse_args = argparse.ArgumentParser.parse_args

    def bench_parse_args(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> argparse.Namespace:
        namespace = parse_args(self, *args, **kwargs)  # an unknown option or a bad value exits 2 here
        if self.prog.startswith("wdist bench "):
            _stop()
        return namespace

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", bench_parse_args)


@pytest.mark.parametrize("command", WDIST_PARSE, ids=_id)
def test_wdist_command_parses(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Every option of the command, as the docs show it, is accepted by the real command line
    (the config keys and values, a benchmark's options), without running it."""
    from wdist.cli import main

    monkeypatch.chdir(ROOT)
    _parse_only(monkeypatch)
    raw = shlex.split(command)
    for key, value in _env_of(raw).items():
        monkeypatch.setenv(key, value)
    tokens = _available_commits(_redirect(_strip_env(raw), tmp_path))
    try:
        code = main(tokens[1:])
    except SystemExit as stop:  # argparse's usage error
        code = stop.code
    except _Parsed:
        return
    out, err = capsys.readouterr()
    pytest.fail(f"{PAGE_OF[command]}: `{command}` did not parse (exit {code}):\n{err[-3000:]}")


@pytest.mark.parametrize("command", WDIST_RUN, ids=_id)
def test_wdist_command_runs(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from wdist.cli import main

    monkeypatch.chdir(ROOT)
    tokens = _available_commits(_redirect(shlex.split(command), tmp_path))
    sub = tokens[1]
    if sub == "estimate":
        argv = tokens[1:] + FAST_ESTIMATE
    elif sub == "exact":
        argv = tokens[1:] + FAST_EXACT
    elif sub == "compare":
        # The shipped file runs 5 critics x 2 seeds; here its first critic and its GP critic on its
        # first seed (every critic of it is exercised by notebooks/02 and tests/test_compare.py).
        cfg = yaml.safe_load((ROOT / _option(tokens, "--config")).read_text())
        cfg["critics"] = [cfg["critics"][0]] + [c for c in cfg["critics"][1:] if c.get("loss") == "wgan-gp"][:1]
        cfg["seeds"] = cfg["seeds"][:1]
        small = tmp_path / "compare-small.yaml"
        small.write_text(yaml.safe_dump(cfg))
        argv = list(tokens[1:])
        argv[argv.index("--config") + 1] = str(small)
        argv += FAST_ESTIMATE
    elif sub == "track":
        argv = tokens[1:] + FAST_TRACK + ([] if "--out" in tokens else ["--out", str(tmp_path / "wdist-track")])
    elif sub == "bench":
        # later options win in argparse, so each benchmark's tiny settings override the README's
        vectors = tokens[2] == "tightness" and _option(tokens, "--source") == "cube"
        argv = tokens[1:] + (FAST_TIGHTNESS_VECTORS if vectors else FAST_BENCH_BY_NAME[tokens[2]])
    else:
        pytest.fail(f"no fast settings known for `wdist {sub}`")
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"`{command}` exited {code}:\n{err[-3000:]}"
    if sub == "estimate":
        assert "certified W1 lower bound" in out
        if "--out" in tokens:
            assert (Path(_option(tokens, "--out")) / "result.json").is_file()
    elif sub == "exact":
        assert "exact W1" in out and "empirical OT" in out
    elif sub == "compare":
        assert "| critic |" in out and (Path(_option(tokens, "--out")) / "comparison.md").is_file()
        assert f"wrote {Path(_option(tokens, '--out')) / 'comparison.md'}" in out  # says where its files are
    elif sub == "track":
        assert "GAN step" in out and "10000" in out
        assert "wrote " in out and "track.json, track.csv, track.png" in out  # says where its files are
    elif sub == "bench":
        assert BENCH_OUTPUT[tokens[2]] in out


@pytest.mark.parametrize("command", WDIST_FAIL, ids=_id)
def test_wdist_command_needing_files_fails_clearly(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from wdist.cli import main

    monkeypatch.chdir(ROOT)
    raw = shlex.split(command)
    for key, value in _env_of(raw).items():  # e.g. MASTER_ADDR=node0 NODE_RANK=0 of the multi-node line
        monkeypatch.setenv(key, value)
    tokens = _redirect(_strip_env(raw), tmp_path)
    kind, reason = classify(command)
    if kind == "needs-data":
        cfg = yaml.safe_load((ROOT / _option(tokens, "--config")).read_text())
        root = (ROOT / _option(tokens, "--config")).parent / cfg["p"]["init_args"]["root"]  # read from its folder
        if root.exists() and any(root.iterdir()):
            pytest.skip(f"{root} is present, so this would start a real run: {reason}")
    fast = FAST_BENCH_BY_NAME[tokens[2]] if kind == "needs-gpu" else FAST_ESTIMATE
    code = main(tokens[1:] + fast)
    out, err = capsys.readouterr()
    assert code == 2, f"`{command}` should stop with a usage error (exit 2), got {code}:\n{err}"
    assert "Traceback" not in err
    msg = (out + err).lower()
    if kind == "needs-gpu":
        assert "no cuda device" in msg, out + err
    elif kind == "fails":
        assert "cannot resume" in msg and "config.yaml" in msg
    else:
        assert "not found" in msg and ("data/cifar10" in msg or "data/stl10" in msg), err


@pytest.mark.parametrize("command", [c for c in SEGMENTS if classify(c)[0] == "covered"], ids=_id)
def test_covered_commands_match_the_covering_test(command: str) -> None:
    text = (ROOT / "tests" / "test_ddp.py").read_text()
    tokens = shlex.split(command)
    assert Path(_option(tokens, "--config")).name in text, f"tests/test_ddp.py no longer runs {command!r}"
    for opt in ("--trainer.accelerator", "--trainer.devices", "--trainer.strategy"):
        assert f'"{opt}", "{_option(tokens, opt)}"' in text, (
            f"tests/test_ddp.py does not pass {opt} {_option(tokens, opt)}"
        )


def test_skip_list_is_current() -> None:
    for command, reason in SKIPPED.items():
        assert command in SEGMENTS, f"SKIPPED names a command the README no longer shows: {command!r}"
        assert len(reason) > 20, f"give the reason for skipping {command!r}"


def test_installed_wdist_script_runs_a_readme_command(monkeypatch: pytest.MonkeyPatch) -> None:
    script = shutil.which("wdist") or str(Path(sys.executable).with_name("wdist"))
    assert Path(script).exists(), "the `wdist` console script is not installed (pip install -e .)"
    exact = next(c for c in SEGMENTS if c.startswith("wdist exact"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [script, *shlex.split(exact)[1:], *FAST_EXACT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exact W1" in proc.stdout


def test_train_digits_command(tmp_path: Path) -> None:
    command = next(c for c in SEGMENTS if classify(c)[0] == "train-digits")
    tokens = shlex.split(command)
    assert _option(tokens, "--out") == "generators/weights/digits_wgan_gp_8.pt"
    out = tmp_path / "digits.pt"
    tokens[tokens.index("--out") + 1] = str(out)  # never overwrite the bundled weights
    proc = subprocess.run(
        [sys.executable, *tokens[1:], "--steps", "2"], cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.is_file() and out.with_suffix(".json").is_file()
    state = torch.load(out, weights_only=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape)
        for k, v in torch.load(ROOT / "generators/weights/digits_wgan_gp_8.pt", weights_only=True).items()
    }


#: (docs text, what runs instead) in the Python API block; each docs text must be present.
PYTHON_ADAPTATIONS = [
    (
        '["--train.steps", "500"]',
        '["--train.steps", "4", "--train.eval_every", "2", "--eval.n_eval", "64", "--eval.ot_samples", "64"], '
        "quiet=True",
    ),
    (
        'generators.load("mimicry/sngan-32", checkpoint="netG.pth")',
        'generators.load("mimicry/sngan-32", random_weights=True)',
    ),
]


def test_python_api_block(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (code,) = [b for b in _blocks("python") if "wdist.estimate(" in b]
    for readme_text, replacement in PYTHON_ADAPTATIONS:
        assert readme_text in code, f"docs/python-api.md's block changed: {readme_text!r} not found; update this test"
        code = code.replace(readme_text, replacement)
    monkeypatch.chdir(ROOT)
    ns: dict = {}
    exec(compile(code, "docs/python-api.md (Python API)", "exec"), ns)
    out = capsys.readouterr().out.split("\n")
    assert ns["result"].certified and ns["result"].exact.w1 == 1.0
    assert ns["L"] <= 1.001
    assert tuple(ns["x"].shape) == (64, 3, 32, 32) and float(ns["x"].abs().max()) <= 1.0
    assert len([line for line in out if line.strip()]) == 3


def test_bring_your_own_journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The bring-your-own YAML of docs/bring-your-own.md, saved in a folder of its own beside a uint8 .npy of 600
    3 x 32 x 32 images and a DCGAN-style generator's state dict, runs first time from the user's
    project folder (relative paths read from the YAML's folder), with the image default critic."""
    from wdist.cli import main
    from wdist.config import IMAGE_DEFAULT_CRITIC

    (block,) = _page_blocks("yaml", ROOT / "docs" / "bring-your-own.md")
    cfg = yaml.safe_load(block)
    p_args, q = cfg["p"]["init_args"], cfg["q"]["init_args"]
    assert q["name"].startswith("python:") and cfg["p"]["class_path"] == "TensorFile"
    assert "value_range" not in p_args  # uint8 data: left out, as the comment says
    assert (cfg["critic"]["name"], cfg["critic"]["options"]) == IMAGE_DEFAULT_CRITIC  # the snippet names it
    project, experiment = tmp_path / "project", tmp_path / "project" / "experiment"
    experiment.mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))  # what running from the project folder gives `wdist`
    module, func = q["name"][len("python:") :].split(":")
    pkg_dir = project / Path(*module.split("."))
    pkg_dir.parent.mkdir(parents=True, exist_ok=True)
    for parent in [project / Path(*module.split(".")[:i]) for i in range(1, len(module.split(".")))]:
        (parent / "__init__.py").write_text("")
    c, h, w = q["output_shape"]
    nz = q["latent_shape"][0]
    assert q["latent_shape"][1:] == [1, 1]  # a DCGAN-style network, taking z of shape (nz, 1, 1)
    pkg_dir.with_suffix(".py").write_text(
        textwrap.dedent(f"""
        from torch import nn

        def {func}():
            return nn.Sequential(
                nn.ConvTranspose2d({nz}, 8, {h // 4}), nn.BatchNorm2d(8), nn.ReLU(),
                nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.BatchNorm2d(4), nn.ReLU(),
                nn.ConvTranspose2d(4, {c}, 4, 2, 1), nn.Sigmoid(),
            )
    """)
    )
    for name in [m for m in sys.modules if m == module or m.startswith(module.split(".")[0] + ".")]:
        sys.modules.pop(name)
    gen = __import__(module, fromlist=[func])
    torch.manual_seed(0)
    torch.save(getattr(gen, func)().state_dict(), experiment / q["checkpoint"])
    images = np.random.default_rng(0).integers(0, 256, (600, c, h, w), dtype=np.uint8)
    np.save(experiment / p_args["path"], images)
    (experiment / "my.yaml").write_text(block)
    fast = ["--train.steps", "2", "--train.eval_every", "2", "--train.batch_size", "16", "--eval.n_eval", "64",
            "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--quiet"]  # fmt: skip
    code = main(["estimate", "--config", "experiment/my.yaml", "--out", "runs/mine", *fast])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads((project / "runs" / "mine" / "result.json").read_text())
    run = result["run"]
    assert run["critic"] == IMAGE_DEFAULT_CRITIC[0] and run["config"]["critic"]["options"] == {}
    assert (result["bound"]["n_eval_p"], result["bound"]["n_eval_q"]) == (cfg["eval"]["n_eval_p"], 64)
    assert run["shape"] == [c, h, w] and run["domain"] == [-1.0, 1.0]
    assert "certified W1 lower bound" in out and f"wrote {Path('runs/mine') / 'result.json'}" in out
