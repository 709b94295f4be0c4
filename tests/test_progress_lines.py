"""Progress fit for a log: one line per evaluation when standard output is not a terminal; the bar
in a terminal (checked through a pseudo-terminal)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from wdist.callbacks import BoundProgressBar, EvaluationLines, progress_callback
from wdist.cli import main

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "configs" / "toy" / "translation-2d.yaml"
ARGS = [
    "--train.steps", "40", "--train.eval_every", "10", "--train.batch_size", "64", "--eval.n_eval", "256",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--train.threads", "1",
]  # fmt: skip
LINE = re.compile(r"^step (\d+)/40  select bound \S+ \[\S+, \S+\] \(95% CI\)  elapsed \d+ s  ETA \d+ s$")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_display_follows_the_stream() -> None:
    assert isinstance(progress_callback(_Terminal()), BoundProgressBar)
    lines = progress_callback(io.StringIO())
    assert isinstance(lines, EvaluationLines) and not isinstance(lines, BoundProgressBar)


def test_a_log_gets_one_line_per_evaluation(capsys: pytest.CaptureFixture) -> None:
    code = main(["estimate", "--config", str(TOY), *ARGS])
    out, err = capsys.readouterr()
    assert code == 0, err
    progress = [line for line in out.splitlines() if line.startswith("step ")]
    assert [int(LINE.match(line).group(1)) for line in progress] == [10, 20, 30, 40], progress
    assert "\r" not in out + err and "it/s" not in out + err  # no bar redrawn
    assert len((out + err).encode()) < 5000


def test_a_terminal_keeps_the_bar() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a 0 x 0 terminal gets no bar
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("wdist")), "estimate", "--config", str(TOY), *ARGS],
        cwd=REPO, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the terminal closed: the process is done
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "it/s" in text and "\r" in text and "bound=" in text and "train/gap" in text  # the bar, bound and gap
    assert not any(LINE.match(line.strip()) for line in text.splitlines())
