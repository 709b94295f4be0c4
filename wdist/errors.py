"""The errors wdist raises on purpose, each with a message that names the value at fault.

Importing this module costs nothing, so the command line can tell them apart without loading the
training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

__all__ = ["ConfigError", "GeneratorRangeError", "NonFiniteLossError", "NonFiniteSamplesError", "RunInterrupted"]


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key or value and what is allowed."""


class GeneratorRangeError(ValueError):
    """A generator's outputs leave its declared ``output_range`` on more than a small fraction of the
    values (:data:`wdist.sources.ranges.OUT_OF_RANGE_LIMIT`): bad input; the message names the
    observed range and the declared one."""


class NonFiniteLossError(FloatingPointError):
    """Training or evaluation produced NaN or Inf; the message names the step and what was non-finite."""


class NonFiniteSamplesError(NonFiniteLossError, ValueError):
    """NaN or Inf came from the samples themselves (a data set or a generator): bad input, not a
    failure of the training; the message names the step and the side."""


class RunInterrupted(BaseException):
    """A run stopped on a signal (SIGTERM, SIGINT) before it wrote a result.

    Like ``KeyboardInterrupt`` it is not an ``Exception``, so no ``except Exception`` on the way
    swallows it.

    Attributes
    ----------
    signum : the signal number.
    step : the training step the run stopped after (``None``: outside training).
    checkpoint : the resumable checkpoint saved at ``step``, or ``None`` when checkpointing is off.
    out : the run's output folder (``None``: nothing written).
    """

    def __init__(
        self, signum: int, step: Optional[int] = None, checkpoint: Optional[Path] = None, out: Optional[Path] = None
    ) -> None:
        super().__init__(signum, step, checkpoint, out)
        self.signum, self.step, self.checkpoint, self.out = signum, step, checkpoint, out
