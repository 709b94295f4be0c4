"""Warm starts: a run's critic starting from a trained critic's weights instead of its own initialisation.

``wdist track`` starts the critic of each checkpoint from the previous checkpoint's, and
:class:`~wdist.monitor.W1Monitor` each estimate's from the previous estimate's; both hand an
:class:`InitState` to :func:`wdist.pipeline.estimate` / :func:`wdist.pipeline.build_run`, which
load it with :func:`load_init_state` right after the critic is built (before Lightning restores a
resumed run's checkpoint, so a resumed run continues its own critic).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Union

import torch
from torch import Tensor, nn

from wdist.errors import ConfigError

__all__ = ["InitState", "head_name", "load_init_state"]


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
