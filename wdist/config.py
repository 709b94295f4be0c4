"""The validated configuration of one estimate, and how YAML files and overrides become one.

Configs are YAML files parsed by jsonargparse against the dataclasses below, so that every key
and value is checked against a type-hinted signature: an unknown key, a value of the wrong type
or outside its range is an error naming it. Sources use jsonargparse's subclass syntax::

    p: {class_path: Digits}
    q: {class_path: Generator, init_args: {name: digits/wgan-gp-8}}

or, for the analytic benchmarks, one toy problem that defines both P and Q::

    toy: {class_path: ThreeCones}

Overrides on the command line use dots: ``--train.steps 200 --q.init_args.checkpoint G.pth``.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from jsonargparse._util import import_object  # the resolver jsonargparse itself uses for class_path
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

import critics
from wdist.errors import ConfigError
from wdist.sources import SOURCES, TOY_PROBLEMS, Source, ToyProblem, check_compatible

__all__ = [
    "CriticConfig",
    "TrainConfig",
    "TrainerConfig",
    "EvalConfig",
    "LoggerConfig",
    "EstimateConfig",
    "Sides",
    "ConfigError",
    "build_parser",
    "load_config",
    "resolve_config",
    "default_config_path",
]


@dataclass
class CriticConfig:
    """Which critic to train: a registry name from ``critics.available()`` and its options."""

    name: str = "bjorck-mlp"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How the critic is trained (maximising E_P f - E_Q f).

    ``loss``: ``kr`` is the plain Kantorovich–Rubinstein objective; ``wgan-gp`` adds
    ``gp_lambda * (||grad f(x_hat)|| - 1)^2`` on random interpolates x_hat.
    ``schedule``: ``none``, ``cosine`` (to 0 over ``steps``) or ``step`` (x0.1 at 50% and 75%).
    ``threads``: torch threads per process; ``auto`` chooses from the critic's work per step and
    the cores this process may use (one thread for small critics; see :mod:`wdist.threads`).
    """

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 256
    loss: Literal["kr", "wgan-gp"] = "kr"
    gp_lambda: NonNegativeFloat = 10.0
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    momentum: NonNegativeFloat = 0.0
    weight_decay: NonNegativeFloat = 0.0
    schedule: Literal["none", "cosine", "step"] = "none"
    eval_every: PositiveInt = 200
    checkpoint_every: Optional[PositiveInt] = None
    threads: Union[Literal["auto"], PositiveInt] = "auto"


@dataclass
class TrainerConfig:
    """Where and how Lightning runs the training: these fields are ``pytorch_lightning.Trainer``
    arguments of the same names, passed to it as they are (``Trainer(**asdict(trainer), ...)``).

    ``precision`` is Lightning's (``32-true``, ``bf16-mixed``, ``16-mixed``, ...): it applies to
    training; held-out evaluation always runs in IEEE float32. The other Trainer arguments
    (steps, validation interval, loggers, checkpoints) are set by wdist from the sections above.
    """

    accelerator: str = "auto"
    devices: Union[int, str, list[int]] = 1
    num_nodes: PositiveInt = 1
    strategy: str = "auto"
    precision: str = "32-true"
    enable_progress_bar: bool = True


@dataclass
class EvalConfig:
    """Held-out evaluation and references.

    ``n_eval`` fresh samples of each side, never used in training, give the estimate and its
    interval (``interval``: ``normal``; ``bernstein``, conservative; ``bootstrap``).
    ``ot_samples`` samples of each side give the exact empirical OT reference (0 disables it);
    ``ot_floor`` adds the same computation for P against a disjoint sample of P.
    """

    n_eval: PositiveInt = 4096
    batch_size: PositiveInt = 1024
    confidence: ClosedUnitInterval = 0.95
    interval: Literal["normal", "bernstein", "bootstrap"] = "normal"
    ot_samples: NonNegativeInt = 2000
    ot_floor: bool = True
    empirical_lipschitz_samples: NonNegativeInt = 512


@dataclass
class LoggerConfig:
    """Where curves go besides ``metrics.csv``: ``none`` or ``wandb`` (offline without an API key)."""

    kind: Literal["none", "wandb"] = "none"
    project: str = "wdist"
    group: Optional[str] = None
    name: Optional[str] = None


@dataclass(frozen=True)
class Sides:
    """The two distributions of a configuration, checked compatible, with W1 where known exactly."""

    p: Source
    q: Source
    exact_w1: Optional[float] = None
    exact_w1_method: Optional[str] = None


@dataclass
class EstimateConfig:
    """Everything one estimate needs. Give either ``toy`` or both ``p`` and ``q``."""

    toy: Optional[ToyProblem] = None
    p: Optional[Source] = None
    q: Optional[Source] = None
    critic: CriticConfig = field(default_factory=CriticConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: NonNegativeInt = 0
    out: Optional[str] = None

    def sides(self) -> Sides:
        """P and Q (of the toy problem, or the two sources), checked to share shape and domain."""
        if self.toy is not None:
            sides = Sides(self.toy.p, self.toy.q, self.toy.exact_w1(), self.toy.exact_w1_method())
        else:
            assert self.p is not None and self.q is not None
            sides = Sides(self.p, self.q)
        check_compatible(sides.p, sides.q)
        return sides


def default_config_path() -> Path:
    """``configs/digits/default.yaml`` of the repository this package is installed from."""
    return Path(__file__).resolve().parent.parent / "configs" / "digits" / "default.yaml"


def build_parser(prog: str = "wdist estimate") -> ArgumentParser:
    """The jsonargparse parser for :class:`EstimateConfig` (``--config FILE`` plus dotted overrides)."""
    parser = ArgumentParser(prog=prog, exit_on_error=False, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML experiment file")
    parser.add_class_arguments(EstimateConfig, None, sub_configs=True)
    return parser


def _known_keys(parser: ArgumentParser) -> list[str]:
    keys = []
    for action in parser._actions:  # the parser's own list of accepted dotted keys
        for opt in action.option_strings:
            if opt.startswith("--") and opt not in ("--help", "--config", "--print_config"):
                keys.append(opt[2:])
    return sorted(set(keys))


def _explain(parser: ArgumentParser, message: str) -> str:
    """Turn a jsonargparse message into one paragraph that also lists what is allowed."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    keys = _known_keys(parser)
    names = [
        a or b
        for a, b in re.findall(
            r"(?:Key|key) \"?'?([\w.\-]+)\"?'? is not expected|unrecognized arguments: --?([\w.\-]+)", text
        )
    ]
    names += [f"{g}.{o}" for g, o in re.findall(r"Group '([\w.\-]+)' does not accept option '([\w.\-]+)'", text)]
    hint = ""
    if names:
        section = names[0].rsplit(".", 1)[0] if "." in names[0] else ""
        siblings = [k for k in keys if (k.rsplit(".", 1)[0] if "." in k else "") == section]
        close = difflib.get_close_matches(names[0], keys, n=1)
        hint = f" Allowed keys{' in ' + repr(section) if section else ''}: {', '.join(siblings)}."
        if close:
            hint += f" Did you mean {close[0]!r}?"
    src = re.search(r"class_path '([\w.]+)'.*?Option '([\w\-]+)' is not accepted", text)
    if src:
        try:
            params = [k for k in inspect.signature(import_object(src.group(1))).parameters if k != "self"]
            hint += f" {src.group(1).rsplit('.', 1)[-1]} accepts: {', '.join(params)}."
        except Exception:
            pass
    if "class_path" in text or "import path" in text:
        hint += f" Known sources (p, q): {', '.join(SOURCES)}; toy problems (toy): {', '.join(TOY_PROBLEMS)}."
    return f"Invalid configuration: {text}.{hint}"


def check_critic(name: str, options: dict, where: str = "critic") -> None:
    """Raise :class:`ConfigError` unless ``name`` is a registered critic and every key of
    ``options`` is one of its options (``where`` names the config entry in the message)."""
    try:
        allowed = critics.critic_options(name)
    except ValueError as err:
        raise ConfigError(f"Invalid configuration: {where}.name: {err}") from None
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Invalid configuration: {where}.options has unknown key(s) {', '.join(map(repr, unknown))} for "
            f"critic {name!r}. Accepted: {', '.join(f'{k} (default {v!r})' for k, v in allowed.items())}."
        )


def _validate(cfg: EstimateConfig) -> EstimateConfig:
    if cfg.toy is not None and (cfg.p is not None or cfg.q is not None):
        raise ConfigError("Invalid configuration: give either 'toy' or both 'p' and 'q', not both.")
    if cfg.toy is None and (cfg.p is None or cfg.q is None):
        missing = [k for k in ("p", "q") if getattr(cfg, k) is None]
        raise ConfigError(
            f"Invalid configuration: missing {' and '.join(map(repr, missing))}. Give a toy problem "
            "('toy: {class_path: ThreeCones}') or two sources ('p: {class_path: Digits}', "
            "'q: {class_path: Generator, init_args: {name: digits/wgan-gp-8}}')."
        )
    check_critic(cfg.critic.name, cfg.critic.options)
    if cfg.eval.n_eval < 2:
        raise ConfigError(
            f"Invalid configuration: eval.n_eval must be at least 2 (a confidence interval needs two held-out "
            f"pairs; thousands are usual); got {cfg.eval.n_eval}."
        )
    if not 0.0 < cfg.eval.confidence < 1.0:
        raise ConfigError(f"Invalid configuration: eval.confidence must be in (0, 1); got {cfg.eval.confidence}.")
    if cfg.train.eval_every > cfg.train.steps:
        cfg.train.eval_every = cfg.train.steps
    return cfg


def _parse(parser: ArgumentParser, config: Union[str, os.PathLike, dict, None], overrides: Sequence[str]) -> Namespace:
    args: list[str] = []
    if config is None:
        config = default_config_path()
    if isinstance(config, dict):
        import yaml

        args += ["--config", yaml.safe_dump(config)]
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(
                f"Config file {str(path)!r} does not exist (expected a YAML file such as configs/toy/three-cones.yaml)."
            )
        args += ["--config", str(path)]
    return parser.parse_args(args + list(overrides))


def resolve_config(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None, overrides: Sequence[str] = ()
) -> tuple[EstimateConfig, Optional[str], Optional[dict]]:
    """Parse and validate; also return the resolved config as YAML text and as a dict.

    The YAML text (``class_path``/``init_args`` kept) is what a run saves as ``config.yaml`` and
    what ``--resume`` reads back. Both are ``None`` for an :class:`EstimateConfig` given directly.

    Raises
    ------
    ConfigError
        Naming the offending key or value and listing what is allowed.
    """
    if isinstance(config, EstimateConfig):
        if overrides:
            raise ConfigError("overrides can only be applied to a YAML file or a dict, not to an EstimateConfig")
        return _validate(config), None, None
    parser = build_parser()
    try:
        ns = _parse(parser, config, overrides)
        init = parser.instantiate(ns)
    except ConfigError:
        raise
    except Exception as err:  # jsonargparse raises ArgumentError, or the class's own error on init
        cause = err.__cause__ or err
        raise ConfigError(_explain(parser, str(cause) if str(cause) else str(err))) from None
    cfg = EstimateConfig(**{k: init[k] for k in EstimateConfig.__dataclass_fields__})
    cfg = _validate(cfg)
    ns.pop("config", None)
    text = parser.dump(ns, skip_none=False, skip_validation=True)
    return cfg, text, ns.as_dict()


def load_config(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None, overrides: Sequence[str] = ()
) -> EstimateConfig:
    """Parse and validate a configuration.

    Parameters
    ----------
    config : path to a YAML file, a dict of the same structure, an :class:`EstimateConfig`, or
        ``None`` for the bundled default (``configs/digits/default.yaml``).
    overrides : command-line style overrides, e.g. ``["--train.steps", "100"]``.
    """
    return resolve_config(config, overrides)[0]
