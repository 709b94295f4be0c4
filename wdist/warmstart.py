"""Warm starts: a run's critic starting from a trained critic's weights instead of its own initialisation.

``wdist track`` starts the critic of each checkpoint from the previous checkpoint's, and
:class:`~wdist.monitor.W1Monitor` each estimate's from the previous estimate's. Both keep the
reported critic of a run with :class:`KeepCritic` (a callback of :func:`wdist.pipeline.estimate`;
in memory, and for ``track`` in a file) and hand the next run the :class:`InitState` that
:func:`warm_init` makes of it (the one rule of both: a head placed from data starts fresh and is
placed again; a warm start that would load nothing is a cold start), which
:func:`wdist.pipeline.estimate` loads with :func:`load_init_state` right after the critic is built
(before Lightning restores a resumed run's checkpoint, so a resumed run continues its own critic).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor, nn

from wdist.errors import ConfigError

__all__ = ["InitState", "KeepCritic", "head_name", "load_init_state", "loads_weights", "places_head", "warm_init"]

#: The buffer of a head placed from data (:class:`critics.layers.PotentialHead`): its record that it
#: was placed, saved with its weights.
PLACED_FLAG = "initialised"


@dataclass(frozen=True)
class InitState:
    """The weights a critic starts from: a state dict, or the file holding one (read with
    ``weights_only=True``). With ``fresh_head`` the critic's last layer (:func:`head_name`) keeps
    the run's own fresh initialisation and only the layers below it are loaded: the features carry
    over, the direction read out of them is learnt again. ``hint``: what to do when the weights do
    not fit the critic (appended to the error)."""

    weights: Union[str, os.PathLike, Mapping[str, Tensor]]
    fresh_head: bool = False
    hint: str = "give the weights of a critic of this configuration"

    def state(self) -> Mapping[str, Tensor]:
        """The state dict (read from its file when a path was given)."""
        if isinstance(self.weights, Mapping):
            return self.weights
        return torch.load(self.weights, map_location="cpu", weights_only=True)

    def describe(self) -> str:
        return "the given state dict" if isinstance(self.weights, Mapping) else repr(os.fspath(self.weights))


def head_name(critic: nn.Module) -> str:
    """The critic's last layer: its last direct submodule holding parameters (``head`` for the
    registered convolutional critics, the last Linear of an ``nn.Sequential`` MLP)."""
    names = [n for n, child in critic.named_children() if any(True for _ in child.parameters())]
    if not names:
        raise ConfigError(
            f"Cannot warm-start with a fresh head: the critic ({type(critic).__name__}) has no submodule with "
            "parameters to re-initialise; warm-start every layer (fresh_head false, --track.warm_fresh_head false)."
        )
    return names[-1]


def loads_weights(state: Mapping[str, Tensor], fresh_head: bool) -> bool:
    """Whether a warm start from ``state`` (a critic's state dict) sets any of the critic's weights.

    Always without ``fresh_head``. With it, the critic's last layer keeps its fresh initialisation,
    so a critic that is all head (``cones``: one layer, every entry of its state under ``head.``)
    takes nothing from ``state``: its "warm start" would only be a shorter cold one. The last layer
    is read from the state dict's top-level names in order (the last one, as :func:`head_name`
    picks the last submodule with parameters of the built critic).
    """
    if not fresh_head:
        return True
    last = _last_layer(state)
    return last is None or any(not key.startswith(last + ".") for key in state)


def _last_layer(state: Mapping[str, Tensor]) -> Optional[str]:
    """The top-level name of the last entry of a critic's state dict (its last layer), if any."""
    top = [key.split(".", 1)[0] for key in state if "." in key]
    return top[-1] if top else None


def places_head(state: Mapping[str, Tensor]) -> bool:
    """Whether the last layer of the critic whose state dict is ``state`` is placed from data: a
    :class:`~critics.layers.PotentialHead`, whose cone centres are put on the first run's training
    items (features of both sides) and only trained after that. Read from the state dict's last
    top-level name, as :func:`loads_weights` reads it."""
    last = _last_layer(state)
    return last is not None and f"{last}.{PLACED_FLAG}" in state


def warm_init(
    weights: Union[str, os.PathLike, Mapping[str, Tensor]],
    fresh_head: bool = False,
    hint: str = InitState.hint,
) -> Optional[InitState]:
    r"""The warm start of a critic from a trained critic's ``weights``, by the one rule of ``wdist track``
    and :class:`~wdist.monitor.W1Monitor`; ``None`` for a cold start.

    The last layer keeps its fresh initialisation (:attr:`InitState.fresh_head`) when ``fresh_head``
    asks for it, and always when it is placed from data (:func:`places_head`): a fresh head is
    placed again on the new run's training items, through the loaded layers below it, so its
    centres sit on the new pair instead of the first one. Where that loads no weight (a critic
    that is all head, such as ``cones``: :func:`loads_weights`) the run starts cold:

    .. math:: \text{fresh} = \text{fresh\_head} \lor \text{placed}(\text{head}), \qquad
        \text{warm} = \text{loads\_weights}(\text{weights}, \text{fresh})

    Parameters
    ----------
    weights : state dict, or the file holding one
        The trained critic's weights.
    fresh_head : bool
        Keep the last layer's fresh initialisation for any critic.
    hint : str
        What to do when the weights do not fit the critic (:attr:`InitState.hint`).

    Returns
    -------
    InitState or None
        What :func:`wdist.pipeline.estimate` loads as ``init_state``; ``None``: train a fresh critic.
    """
    state = InitState(weights).state()
    fresh = bool(fresh_head) or places_head(state)
    if not loads_weights(state, fresh):
        return None
    return InitState(weights, fresh, hint)


def load_init_state(critic: nn.Module, init: InitState) -> None:
    """Load ``init`` into ``critic`` in place (the head kept as initialised when ``init.fresh_head``).

    Raises
    ------
    ConfigError
        The weights are not those of a critic of this shape (the message names them and ``init.hint``).
    """
    state = dict(init.state())
    if init.fresh_head:
        head = head_name(critic) + "."
        own = critic.state_dict()
        state = {k: own[k] if k.startswith(head) else v for k, v in state.items()}
    try:
        critic.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(
            f"Cannot warm-start from {init.describe()}: it is not a critic of this configuration ({err}). {init.hint}."
        ) from None


class KeepCritic(Callback):
    """Keeps the reported critic of a run: its state dict once the test split has been evaluated
    (the state selected on the select split, whose bound the run reports), on the CPU in
    :attr:`state`, and with ``path`` also written there (atomically, by rank 0), for the next run's
    :class:`InitState`.

    Attributes
    ----------
    state : dict of str -> Tensor, or None
        The reported critic's weights (``None`` until the run's test evaluation).
    """

    def __init__(self, path: Optional[Union[str, os.PathLike]] = None) -> None:
        self.path = None if path is None else Path(path)
        self.state: Optional[dict[str, Tensor]] = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.state = {k: v.detach().cpu().clone() for k, v in pl_module.critic.state_dict().items()}
        if self.path is None or trainer.global_rank != 0:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        torch.save(self.state, tmp)
        os.replace(tmp, self.path)
