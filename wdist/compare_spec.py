"""The comparison file of ``wdist compare``: an estimate config plus ``critics`` and ``seeds``.

::

    critics:
      - {label: bcop, name: bcop-dcgan, options: {width: 0.25}}
      - {label: gp,   name: gp-dcgan,   options: {width: 0.25}, loss: wgan-gp}
    seeds: [0, 1, 2]

Every key of the file can be overridden on the command line, the comparison's own two included
(``--seeds '[0]'``, ``--critics '[{label: bcop, name: bcop-dcgan}]'``); the others apply to the
shared estimate config (``--train.steps 100``). Reading and checking the file imports no training
code, so ``wdist compare --help`` and a bad comparison file answer at once.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from jsonargparse import ArgumentParser
from jsonargparse._loaders_dumpers import yaml_load  # jsonargparse's own YAML reading (1e-3 is a float)
from jsonargparse.typing import NonNegativeInt, PositiveFloat

from wdist.config import (
    ConfigError,
    CriticConfig,
    EstimateConfig,
    _explain,
    check_critic,
    parse_config,
    read_config_file,
)

__all__ = [
    "CompareEntry",
    "CompareSpec",
    "COMPARE_KEYS",
    "COMPARE_HELP",
    "read_comparison",
    "parse_comparison",
    "run_config",
    "split_overrides",
]

#: The keys a comparison file adds to an estimate config.
COMPARE_KEYS = ("critics", "seeds")

#: What ``wdist compare --help`` says about those keys.
COMPARE_HELP = """A comparison file is an estimate config (the keys below) plus:
  critics   a list of {label, name, options, loss, lr}: a label for the table, a registered critic
            (critics.available()), its options, its loss (default: the one its family is made for)
            and its learning rate (default: train.lr)
  seeds     the seeds every critic runs with (default [0])
Override them like any key: --seeds '[0, 1]' --critics '[{label: bcop, name: bcop-dcgan}]'.
Outputs: --out DIR (default runs/compare-<file name>) receives comparison.md, comparison.json,
comparison.png and one folder per critic and seed."""


@dataclass
class CompareEntry:
    """One critic of a comparison: a label for the table, a registry name, options, its loss
    (``None``: the one the critic family is made for, see ``critics.default_loss``) and its
    learning rate (``None``: ``train.lr``)."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    loss: Optional[Literal["kr", "wgan-gp"]] = None
    lr: Optional[PositiveFloat] = None


@dataclass
class CompareSpec:
    """The critics and seeds of a comparison."""

    critics: list[CompareEntry]
    seeds: list[NonNegativeInt] = field(default_factory=lambda: [0])


def split_overrides(overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The overrides of :data:`COMPARE_KEYS` (``--seeds VALUE``, ``--seeds=VALUE``; the value YAML),
    and the rest (for the estimate config), in their order."""
    own: dict[str, Any] = {}
    rest: list[str] = []
    items = list(overrides)
    i = 0
    while i < len(items):
        item = str(items[i])
        key, eq, value = item[2:].partition("=") if item.startswith("--") else ("", "", "")
        if key in COMPARE_KEYS:
            if not eq:
                if i + 1 >= len(items):
                    raise ConfigError(f"Invalid comparison: --{key} needs a value (e.g. --seeds '[0, 1]').")
                value, i = str(items[i + 1]), i + 1
            try:
                own[key] = yaml_load(value)
            except Exception as err:
                raise ConfigError(f"Invalid comparison: --{key} {value!r} is not valid YAML ({err}).") from None
        else:
            rest.append(item)
        i += 1
    return own, rest


def parse_spec(data: dict[str, Any]) -> CompareSpec:
    """The critics and seeds of a comparison mapping, checked (every critic name and its options)
    before anything trains.

    Raises
    ------
    ConfigError
        A key or value the dataclasses above refuse, no critics, repeated labels, an unknown critic
        or option.
    """
    parser = ArgumentParser(exit_on_error=False, allow_abbrev=False)
    parser.add_class_arguments(CompareSpec, None)
    try:
        ns = parser.parse_object({k: data[k] for k in COMPARE_KEYS if k in data})
        init = parser.instantiate(ns)
    except Exception as err:
        raise ConfigError(_explain(parser, str(err.__cause__ or err))) from None
    spec = CompareSpec(critics=init["critics"], seeds=init["seeds"])
    if not spec.critics:
        raise ConfigError("Invalid comparison: 'critics' is empty; list at least one {label, name} entry.")
    labels = [c.label for c in spec.critics]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"Invalid comparison: critic labels must be distinct; got {labels}.")
    if not spec.seeds:
        raise ConfigError("Invalid comparison: 'seeds' is empty; give at least one seed (e.g. [0]).")
    for i, entry in enumerate(spec.critics):  # every entry checked before the first run trains
        check_critic(entry.name, entry.options, where=f"critics[{i}] ({entry.label!r})")
    return spec


def read_comparison(
    config: Union[str, os.PathLike, dict[str, Any]], overrides: Sequence[str] = ()
) -> tuple[str, CompareSpec, dict[str, Any], list[str]]:
    """``(name, spec, base, estimate_overrides)`` of a comparison file (or mapping) with overrides.

    ``name`` is the file's stem (``comparison`` for a mapping); ``base`` the shared estimate config
    (relative input paths of a file made absolute against its folder, as for ``wdist estimate``);
    ``estimate_overrides`` the overrides that apply to ``base``. ``--seeds`` and ``--critics``
    replace the file's.
    """
    if isinstance(config, dict):
        data, name = dict(config), "comparison"
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(
                f"Comparison file {str(path)!r} does not exist (resolved to {str(path.resolve())!r}; e.g. "
                "configs/compare/digits.yaml)."
            )
        data, name = read_config_file(path), path.stem
    own, rest = split_overrides(overrides)
    data.update(own)
    spec = parse_spec(data)
    base = {k: v for k, v in data.items() if k not in COMPARE_KEYS}
    return name, spec, base, rest


def parse_comparison(
    config: Union[str, os.PathLike, dict[str, Any]], overrides: Sequence[str] = ()
) -> tuple[str, CompareSpec, EstimateConfig, list[str]]:
    """``(name, spec, shared, estimate_overrides)``: :func:`read_comparison` with the shared estimate
    config parsed once (with the first critic; no source built), from which every run's configuration
    is derived (:func:`run_config`)."""
    name, spec, base, rest = read_comparison(config, overrides)
    first = spec.critics[0]
    shared = parse_config({**base, "critic": {"name": first.name, "options": first.options}}, rest, COMPARE_KEYS)
    return name, spec, shared, rest


def run_config(shared: EstimateConfig, entry: CompareEntry, seed: int, name: str) -> EstimateConfig:
    """The configuration of one run of a comparison named ``name``: the shared one with the entry's
    critic, options, loss and learning rate (the shared ones where the entry gives none), the seed,
    and the run's logger name (``<label>-seed<seed>``, in the group ``name`` unless the config names one)."""
    train = replace(
        shared.train,
        loss=entry.loss if entry.loss is not None else shared.train.loss,
        lr=float(entry.lr) if entry.lr is not None else shared.train.lr,
    )
    logger = replace(shared.logger, group=shared.logger.group or name, name=f"{entry.label}-seed{seed}")
    critic = CriticConfig(entry.name, copy.deepcopy(dict(entry.options)))
    return replace(shared, critic=critic, train=train, logger=logger, seed=int(seed), out=None)
