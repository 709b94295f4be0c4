"""The configured critic: built from ``critic.name`` and ``critic.options`` and checked certifiable."""

from __future__ import annotations

from torch import nn

import critics
from wdist.auto import AUTO, candidates_for
from wdist.config import ConfigError, EstimateConfig

__all__ = ["build_critic"]


def build_critic(cfg: EstimateConfig, shape: tuple[int, ...]) -> nn.Module:
    """The configured critic for inputs of ``shape`` (a bad option names ``critic.options``), checked
    to be certifiable before any training (a module no certificate rule describes is named)."""
    if cfg.critic.name == AUTO:
        raise ConfigError(
            f"Invalid configuration: critic.name {AUTO!r} trains several candidate critics and chooses one on the "
            "select split; only `wdist estimate` (wdist.estimate) makes that choice. Name one critic here (e.g. "
            f"{', '.join(repr(c.name) for c in candidates_for(shape))})."
        )
    try:
        critic = critics.build(cfg.critic.name, shape, **cfg.critic.options)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"Invalid configuration: critic {cfg.critic.name!r} could not be built with critic.options="
            f"{dict(cfg.critic.options)!r} for inputs of shape {shape}: {err}"
        ) from None
    try:
        critics.certificate_report(critic, shape)
    except critics.CertificationError as err:
        raise ConfigError(f"Invalid configuration: critic {cfg.critic.name!r} cannot be certified: {err}") from None
    return critic
