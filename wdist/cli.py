"""The ``wdist`` command line (``wdist --help`` prints :func:`usage`).

``wdist COMMAND --help`` prints that command's usage and options, with or without ``--config``,
and exits 0 without building a source, a critic or a Trainer and without writing a file.

Errors in the user's input (a value, a file, NaN/Inf samples) print one paragraph and exit with
status 2; a failure of the run itself exits with 1; ``--debug`` shows the traceback instead.
SIGTERM / SIGINT stop a run after the current step, with a resumable checkpoint when checkpoints
are on, print one line saying where it stopped and how to resume, and exit with 143 / 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from wdist.allocator import keep_freed_memory
from wdist.cores import prefer_passive_waiting
from wdist.errors import NonFiniteLossError, NonFiniteSamplesError, RunInterrupted

__all__ = ["main", "exit_code", "usage", "USAGE"]

#: One line (or a few) per command: how it is called and what it does.
USAGE = {
    "estimate": "wdist estimate [--config FILE] [--key value ...] [--out DIR] [--logger wandb] [--resume DIR]\n"
    "    train a Lipschitz critic, certify it, report the certified W1 lower bound (no --config: the digits default)",
    "exact": "wdist exact --config FILE [--key value ...] [--out DIR]\n"
    "    the closed form (toys) and the exact empirical OT references only; no training",
    "compare": "wdist compare --config FILE [--key value ...] [--seeds '[0, 1]'] [--critics '[...]'] [--out DIR] "
    "[--logger wandb]\n"
    "    several critics x seeds on the same P, Q and budget (a comparison file: an estimate config plus\n"
    "    'critics' and 'seeds'; every key of it can be overridden, --seeds and --critics included)",
    "track": "wdist track [--track.checkpoints FILE_OR_GLOB ...] [--track.steps N ...] [--track.warm_start BOOL]\n"
    "            [--track.warm_steps N] [--track.warm_lr LR] [--track.warm_fresh_head BOOL]\n"
    "            [--config FILE] [--key value ...] [--out DIR] [--resume DIR]\n"
    "    one certified bound per generator checkpoint of a GAN's training",
    "bench": "wdist bench {BENCHES} [options]\n    the project's benchmarks (wdist bench --help lists them)",
}

_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    PermissionError,
    NotADirectoryError,
)


def _split_common(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Pull out the options the CLI itself handles; the rest are config overrides."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--config", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--logger", default=None, choices=["none", "wandb"])
    ap.add_argument("--resume", default=None)
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("-h", "--help", action="store_true")
    ns, rest = ap.parse_known_args(list(argv))
    if ns.logger is not None:
        rest += ["--logger.kind", ns.logger]
    return ns, rest


# Each command imports what it needs when it runs: the training stack (Lightning, POT,
# matplotlib) costs seconds to import, which `wdist --help` and usage errors should not pay.


def _settled_config(ns: argparse.Namespace, overrides: Sequence[str]) -> Any:
    """The estimate's configuration, parsed (once) and settled before the training stack is imported,
    so that a misspelt key or bad value answers in the time it takes to import torch, not Lightning
    too (about 6 s more). ``None`` for a resumed run: the pipeline parses that one (once), against
    the run's saved ``config.yaml`` and with the resume context in its messages."""
    if ns.resume is not None:
        return None
    # start-up cost: the config imports torch and the sources, not Lightning
    from wdist.config import resolve_config

    return resolve_config(ns.config, overrides)


def usage(command: Optional[str] = None) -> str:
    """The usage text of ``command``, or of every command (what ``wdist --help`` prints)."""
    # start-up cost: the benchmarks' names only (wdist.bench imports no benchmark), when usage is printed
    from wdist.bench import BENCHES

    def one(name: str) -> str:
        return USAGE[name].replace("{BENCHES}", "{" + ",".join(BENCHES) + "}")

    if command is not None:
        return "usage: " + one(command)
    lines = ["usage: wdist COMMAND [options]   (COMMAND --help for its options; no COMMAND: estimate)", ""]
    lines += ["  " + one(name).replace("\n", "\n  ") for name in _COMMANDS]
    lines += ["", __doc__.split("\n\n", 2)[2].strip()]
    return "\n".join(lines)


def _print_help(command: str, *texts: str) -> int:
    """Print the usage of ``command``, then ``texts``, then the configuration keys every command that
    takes a config accepts (the estimate's parser); the exit code of ``--help`` (0)."""
    # start-up cost: the config imports torch and the sources, not Lightning; nothing is built
    from wdist.config import build_parser

    for text in (usage(command), *texts):
        print(text, end="\n\n")
    build_parser(f"wdist {command}", count=False).print_help()
    return 0


def _cmd_estimate(argv: Sequence[str]) -> int:
    ns, overrides = _split_common(argv)
    if ns.help:
        return _print_help("estimate")
    cfg = _settled_config(ns, overrides)
    # start-up cost: Lightning, torchmetrics and torchvision, imported once the config is valid
    from wdist.pipeline import estimate

    if cfg is None:
        result = estimate(ns.config, overrides, out=ns.out, resume=ns.resume, quiet=ns.quiet)
    else:
        result = estimate(cfg, out=ns.out, resume=ns.resume, quiet=ns.quiet)
    if result is None:  # a non-zero rank of a distributed run: rank 0 reports
        return 0
    print(result.format_table())
    if ns.out or ns.resume:
        where = ns.out or ns.resume
        curves = f"candidates/{result.auto['chosen']['label']}/metrics.csv" if result.auto else "metrics.csv"
        print(f"\nwrote {Path(where) / 'result.json'}, {curves}, bound_curve.png")
    return 0


def _cmd_exact(argv: Sequence[str]) -> int:
    # start-up cost: imported when the command runs
    from wdist.config import load_config
    from wdist.files import atomic_write_text, prepare_output_dir
    from wdist.references import exact_report
    from wdist.report import format_rows

    ns, overrides = _split_common(argv)
    if ns.help:
        return _print_help("exact")
    cfg = load_config(ns.config, overrides)
    out = prepare_output_dir(ns.out) if ns.out else None  # before the work: a bad folder is bad input
    report = exact_report(cfg)
    print(format_rows(report.rows()))
    if out is not None:
        atomic_write_text(out / "exact.json", json.dumps(report.to_dict(), indent=2))
        print(f"\nwrote {out / 'exact.json'}")
    return 0


def _cmd_compare(argv: Sequence[str]) -> int:
    ns, overrides = _split_common(argv)
    if ns.help:
        # start-up cost: the comparison's keys are those of an estimate plus its own; Lightning is not imported
        from wdist.compare_spec import COMPARE_HELP

        return _print_help("compare", COMPARE_HELP)
    if ns.config is None:
        raise ValueError("wdist compare needs --config FILE (e.g. configs/compare/digits.yaml)")
    # start-up cost: Lightning, imported when the command runs
    from wdist.compare import compare

    comp = compare(ns.config, overrides, out=ns.out, quiet=ns.quiet)
    print(comp.markdown)
    print(f"\nwrote {comp.files['md']}, comparison.json, comparison.png and one folder per run in {comp.out}")
    return 0


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _cmd_track(argv: Sequence[str]) -> int:
    ns, rest = _split_common(argv)
    ap = argparse.ArgumentParser(prog="wdist track", add_help=False, exit_on_error=False)
    ap.add_argument("--track.checkpoints", dest="checkpoints", nargs="+", default=[])
    ap.add_argument("--track.steps", dest="steps", nargs="+", type=int, default=None)
    ap.add_argument("--track.warm_start", dest="warm_start", type=_bool, default=True)
    ap.add_argument("--track.warm_steps", dest="warm_steps", type=int, default=None)
    ap.add_argument("--track.warm_lr", dest="warm_lr", type=float, default=None)
    ap.add_argument("--track.warm_fresh_head", dest="warm_fresh_head", type=_bool, default=True)
    if ns.help:
        print(usage("track"), end="\n\n")
        # start-up cost: imported when the command runs (its docstring is the reference of every option)
        from wdist.tracking import track

        print(track.__doc__)
        return 0
    try:
        opts, overrides = ap.parse_known_args(rest)
    except argparse.ArgumentError as err:
        raise ValueError(f"wdist track: {err}") from None
    if ns.resume is not None:
        given = [name for name, value in (
            ("--config", ns.config), ("--out", ns.out), ("--track.checkpoints", opts.checkpoints),
            ("--track.steps", opts.steps), ("--track.warm_steps", opts.warm_steps), ("--track.warm_lr", opts.warm_lr),
        ) if value] + [name for name, value in (
            ("--track.warm_start", opts.warm_start), ("--track.warm_fresh_head", opts.warm_fresh_head),
        ) if value is not True] + list(overrides)  # fmt: skip
        if given:
            raise ValueError(
                f"wdist track --resume continues a track with the settings saved in its track.json; got also "
                f"{' '.join(given)}. Expected --resume DIR alone (start a new track in another --out to change them)."
            )
    # start-up cost: Lightning, imported when the command runs
    from wdist.tracking import track

    result = track(
        ns.config, overrides, checkpoints=opts.checkpoints, steps=opts.steps, warm_start=opts.warm_start,
        warm_steps=opts.warm_steps, warm_lr=opts.warm_lr, warm_fresh_head=opts.warm_fresh_head,
        out=ns.out or ("wdist-track" if ns.resume is None else None), resume=ns.resume, quiet=ns.quiet,
    )  # fmt: skip
    print(result.format_table())
    print(f"\nwrote {result.out / 'track.json'}, track.csv, track.png and one folder per checkpoint under {result.out}")
    return 0


def _cmd_bench(argv: Sequence[str]) -> int:
    # start-up cost: imported when the command runs
    from wdist.bench import main as bench_main

    return bench_main(list(argv))


_COMMANDS = {
    "estimate": _cmd_estimate,
    "exact": _cmd_exact,
    "compare": _cmd_compare,
    "track": _cmd_track,
    "bench": _cmd_bench,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``wdist`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv

    keep_freed_memory()  # CPU steps of BCOP/SOC critics otherwise re-fault freed pages every step
    # before torch loads the OpenMP runtime, which reads its wait policy once (wdist/cores.py)
    prefer_passive_waiting()
    if not argv or argv[0] not in _COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(usage())
            return 0
        if argv and not argv[0].startswith("-"):
            print(f"wdist: error: unknown command {argv[0]!r}; choose one of: {', '.join(_COMMANDS)}.", file=sys.stderr)
            return 2
        argv = ["estimate", *argv]  # `wdist` alone runs the default estimate
    cmd, rest = argv[0], argv[1:]
    return _run_command(cmd, rest, debug)


def exit_code(err: BaseException) -> int:
    """The exit status of a command that raised ``err``: 2 for bad input (a usage error: a value,
    a file or NaN/Inf samples), 128 + the signal number for a run stopped by a signal (130 for
    SIGINT, 143 for SIGTERM), 1 for any other failure (a fault of wdist or of the training)."""
    if isinstance(err, RunInterrupted):
        return 128 + int(err.signum)
    if isinstance(err, KeyboardInterrupt):
        return 128 + int(signal.SIGINT)
    if isinstance(err, NonFiniteLossError) and not isinstance(err, NonFiniteSamplesError):
        return 1  # the critic diverged on finite samples
    return 2 if isinstance(err, _USAGE_ERRORS) else 1


def _interrupted_line(cmd: str, err: BaseException) -> str:
    """The one line printed when a run is stopped by a signal: where it stopped and how to go on."""
    if not isinstance(err, RunInterrupted):
        return f"wdist {cmd}: stopped by SIGINT; no result written."
    name = signal.Signals(err.signum).name
    if cmd == "track" and err.out is not None and Path(err.out).parent.name == "runs":
        track_dir = Path(err.out).parent.parent
        return (
            f"wdist track: stopped by {name}; the finished checkpoints' results are kept, the track is not complete. "
            f"Continue with: wdist track --resume {track_dir}"
        )
    if err.step is None:
        return f"wdist {cmd}: stopped by {name}; no result written."
    if err.checkpoint is None:
        return (
            f"wdist {cmd}: stopped by {name} after training step {err.step}; no result written, and no checkpoint "
            "to resume from (train.checkpoint_every is not set)."
        )
    return (
        f"wdist {cmd}: stopped by {name} after training step {err.step}; saved a resumable checkpoint "
        f"{err.checkpoint}; no result written. Continue with: wdist estimate --resume {err.out}"
    )


@contextlib.contextmanager
def _signals_stop_the_command() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`RunInterrupted` (instead of a silent exit, or Lightning
    turning Ctrl-C into exit status 1); while a critic trains, the run's own handler takes over
    and stops it at the next step with a checkpoint. The previous handlers are restored after."""

    def stop(signum: int, frame: object) -> None:
        raise RunInterrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_command(cmd: str, rest: list[str], debug: bool) -> int:
    """Run one command; turn what it raises into one paragraph on stderr and an exit status."""
    try:
        with _signals_stop_the_command():
            return _COMMANDS[cmd](rest)
    except (RunInterrupted, KeyboardInterrupt) as err:
        print(_interrupted_line(cmd, err), file=sys.stderr)
        return exit_code(err)
    except Exception as err:  # one clear paragraph, unless --debug
        if debug:
            raise
        msg = str(err) or type(err).__name__
        print(f"wdist {cmd}: error: {msg}", file=sys.stderr)
        code = exit_code(err)
        if code == 1:
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
