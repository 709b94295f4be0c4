"""How many torch threads a run uses: ``train.threads`` when given, else chosen from the work and the cores.

Rules, the first that applies decides (the reason is printed and recorded in ``result.json``):

1. ``train.threads = N`` in the configuration (or ``--train.threads N``): N.
2. ``OMP_NUM_THREADS`` in the environment: its value (torch itself starts from it).
3. Training on a GPU: 1 per process; the CPU only prepares batches.
4. Fewer than 2 cores per process (:func:`wdist.cores.available_cores`, divided by the training
   processes on this node): 1.
5. A small critic, under :data:`SMALL_STEP_GFLOP` floating-point operations per training step
   (:func:`training_step_flops`): 1.
6. Otherwise: every core available to the process.

Why small critics get one thread: torch splits each operator over its threads and waits for the
slowest at the end of the operator. A small critic's step is hundreds of operators that each
take well under a millisecond. On an idle machine the second thread saves little (measured on
this project's 2-core machine, idle: the default digits job trained in 24.8-27.0 s with two
threads and 28.6-31.5 s with one); when another program is running, a thread that loses its core
stalls every operator until the scheduler gives it back (a time slice is milliseconds): with one
competing process the same job took 118.8 s wall with two threads and 46.1 s with one. Large operators (full-width image
critics: about 200 GFLOP per step, tens of ms per operator) amortise both the waiting and a lost
time slice, so they keep every core.

The count is a function of the configuration and the cores the process may use, never of the
machine's momentary load: a run is repeatable (thread counts change the order of floating-point
sums), and the count is stated beside the result.

Cores the training leaves free (``ThreadChoice.spare_cores``: a small critic on a 2-core machine
leaves one) take work that needs no synchronisation with training: the exact-OT references are
solved there while the critic trains (:func:`wdist.references.reference_job`).
The references' values do not depend on where they are solved.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from wdist.config import EstimateConfig
from wdist.cores import Cores, available_cores

__all__ = [
    "ThreadChoice",
    "SMALL_STEP_GFLOP",
    "choose_threads",
    "omp_num_threads",
    "processes_per_node",
    "trains_on_gpu",
    "training_step_flops",
    "apply_threads",
    "run_threads",
    "torch_threads",
]

#: Training steps below this many GFLOP (10^9 floating-point operations, matrix products and
#: convolutions, forward and backward) run on one thread per process. The default digits critic
#: (``cones``) needs about 0.05 GFLOP per step, the former default (``bcop-dcgan`` at width 0.25)
#: about 0.24 (about 20 ms on one core here); a full-width BCOP critic on 3 x 32 x 32 images about
#: 200 (4.5 s). At 10 GFLOP a step
#: takes a quarter of a second on one of these cores and its operators last milliseconds, as
#: long as a scheduler time slice: from there on a second thread pays for its waiting.
SMALL_STEP_GFLOP = 10.0


@dataclass(frozen=True)
class ThreadChoice:
    """Torch threads per process (``count``) and why (``reason``, one line); ``spare_cores``: the
    cores this node's training processes leave unused (cores available minus ``count`` times the
    processes; 0 when unknown)."""

    count: int
    reason: str
    spare_cores: int = 0

    def record(self) -> dict[str, Any]:
        """What ``result.json`` stores: the count, the reason, the spare cores and the OpenMP wait
        policy in force (``OMP_WAIT_POLICY`` as the environment holds it; ``None``: the runtime's default)."""
        return {
            "count": self.count,
            "reason": self.reason,
            "spare_cores": self.spare_cores,
            "openmp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        }


def omp_num_threads(value: Optional[str]) -> Optional[int]:
    """The thread count an ``OMP_NUM_THREADS`` value asks for (its first entry, a positive
    integer), or ``None`` when unset or not a positive integer (OpenMP ignores such values too)."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def trains_on_gpu(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` puts training on a GPU (``auto``: when CUDA or MPS is present)."""
    name = str(accelerator).lower()
    if name == "cpu":
        return False
    if name == "auto":
        mps = getattr(torch.backends, "mps", None)
        return torch.cuda.is_available() or bool(mps is not None and mps.is_available())
    return True


def processes_per_node(devices: Union[int, str, Sequence[int]], on_gpu: bool) -> int:
    """Training processes Lightning starts on this node for ``trainer.devices`` (a count, a list
    of device indices, or ``auto``/``-1``: every GPU on a GPU run, one process on the CPU)."""
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    text = str(devices).strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if "," in text:
        return max(1, len([d for d in text.split(",") if d.strip()]))
    if on_gpu and text in ("auto", "-1"):
        return max(1, torch.cuda.device_count())
    return 1


def training_step_flops(critic: nn.Module, input_shape: Sequence[int], batch_size: int, loss: str) -> float:
    """Floating-point operations of one training step of ``critic``, estimated.

    torch's ``FlopCounterMode`` counts the matrix products and convolutions of two forward passes
    in training mode, on 1 and on 2 inputs (zeros; the cached constrained weights are dropped
    before each, so both rebuild them). Their difference is the per-sample cost ``s``; the rest,
    ``c``, does not depend on the batch (building orthogonal weights: Björck, BCOP, SOC). A step
    forwards ``n`` samples and backpropagates at about twice the forward's cost:

    .. math::

        \\text{flops} \\approx 3\\,(c + n\\,s), \\qquad n = 2B \\ (\\texttt{kr}), \\quad n = 4B \\ (\\texttt{wgan-gp}:
        \\text{the } B \\text{ interpolates' extra forward and double backward})

    with ``B`` the training batch size (``B`` samples of P and ``B`` of Q). The estimate only
    sorts critics into small and large (:data:`SMALL_STEP_GFLOP`).
    The critic is left as it was: its parameters and buffers, its train or eval mode, and the
    global random state.
    """
    counts = []
    state = {key: value.detach().clone() for key, value in critic.state_dict().items()}
    training = critic.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for n in (1, 2):
                critic.train()  # drops cached kernels, so that each pass builds its weights
                mode = FlopCounterMode(display=False)
                with mode:
                    critic(torch.zeros(n, *input_shape))
                counts.append(float(mode.get_total_flops()))
    finally:  # also when a pass fails: the caller falls back to one thread and trains this critic
        with torch.no_grad():
            critic.load_state_dict(state)
        critic.train(training)
    per_sample = max(0.0, counts[1] - counts[0])
    fixed = max(0.0, counts[0] - per_sample)
    samples = (4 if loss == "wgan-gp" else 2) * int(batch_size)
    return 3.0 * (fixed + samples * per_sample)


def choose_threads(
    requested: Union[int, str, None],
    *,
    omp_env: Optional[str],
    on_gpu: bool,
    cores: Cores,
    processes: int,
    step_gflop: Callable[[], float],
) -> ThreadChoice:
    """The thread count of a run by the rules of this module, with its reason.

    Parameters
    ----------
    requested : ``train.threads`` (a positive int, or ``"auto"``/``None`` for the rules).
    omp_env : the ``OMP_NUM_THREADS`` environment value, or ``None``.
    on_gpu : whether training runs on a GPU.
    cores : the cores this process may use.
    processes : training processes on this node sharing those cores.
    step_gflop : returns the estimated GFLOP of one training step; called only when needed.
    """
    if requested not in (None, "auto"):
        n = int(requested)
        return ThreadChoice(n, f"train.threads={n} (set in the configuration)")
    env = omp_num_threads(omp_env)
    if env is not None:
        return ThreadChoice(env, f"OMP_NUM_THREADS={omp_env} in the environment")
    if on_gpu:
        return ThreadChoice(1, "auto: 1 (training runs on the GPU; the CPU only prepares batches)")
    per_process = max(1, cores.count // max(1, processes))
    share = cores.describe() + (f" / {processes} processes" if processes > 1 else "")
    if per_process == 1:
        return ThreadChoice(1, f"auto: 1 (1 core per process: {share})")
    try:
        gflop = float(step_gflop())
    except Exception as err:  # a heuristic must not stop the run; the reason says what happened
        return ThreadChoice(1, f"auto: 1 (the work per step could not be counted: {type(err).__name__}: {err})")
    if gflop < SMALL_STEP_GFLOP:
        return ThreadChoice(
            1, f"auto: 1 (small critic: about {gflop:.2g} GFLOP per training step < {SMALL_STEP_GFLOP:g}; {share})"
        )
    return ThreadChoice(
        per_process, f"auto: {per_process} (about {gflop:.3g} GFLOP per training step >= {SMALL_STEP_GFLOP:g}; {share})"
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Inside: torch's intra-op thread count is ``count``; the count it had after."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op threads to ``choice.count`` and its inter-op threads to 1.

    The intra-op count applies from the next parallel region, so it may be set at any time. The
    inter-op pool (``torch.jit.fork`` and friends; wdist forks nothing) can only be sized before
    its first use: one thread keeps it from adding threads beside the intra-op ones. Where it was
    already used or sized (a second estimate in one process) torch refuses, and it stays as it is.
    """
    torch.set_num_threads(int(choice.count))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def run_threads(cfg: EstimateConfig, input_shape: Sequence[int], critic: nn.Module) -> ThreadChoice:
    """The thread count of the run ``cfg`` on inputs of ``input_shape``, by the rules above, on
    this process's cores, with the cores its training processes leave spare. The work is counted on
    the run's own ``critic`` (:func:`training_step_flops`, which leaves it and the random state as
    they were)."""

    def step_gflop() -> float:
        return training_step_flops(critic, input_shape, cfg.train.batch_size, cfg.train.loss) / 1e9

    on_gpu = trains_on_gpu(cfg.trainer.accelerator)
    cores = available_cores()
    processes = processes_per_node(cfg.trainer.devices, on_gpu)
    choice = choose_threads(
        cfg.train.threads,
        omp_env=os.environ.get("OMP_NUM_THREADS"),
        on_gpu=on_gpu,
        cores=cores,
        processes=processes,
        step_gflop=step_gflop,
    )
    return replace(choice, spare_cores=max(0, cores.count - choice.count * processes))
