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
from wdist.sources import PAIRS, SOURCES, TOY_PROBLEMS, Source, ToyProblem, check_compatible

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
    "config_dict",
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
    ``gp_lambda * (||grad f(x_hat)|| - 1)^2`` on random interpolates x_hat; ``None`` (the default):
    the objective the critic family is made for (``critics.default_loss``: ``wgan-gp`` for the
    unconstrained ``gp-*`` critics, ``kr`` for the Lipschitz ones). A loss set explicitly wins, and
    the result says when it differs from the family's.
    ``schedule``: ``none``, ``cosine`` (to 0 over ``steps``) or ``step`` (x0.1 at 50% and 75%).
    ``threads``: torch threads per process; ``auto`` chooses from the critic's work per step and
    the cores this process may use (one thread for small critics; see :mod:`wdist.threads`).
    """

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 256
    loss: Optional[Literal["kr", "wgan-gp"]] = None
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

    Independent held-out samples of each side, never used in training, give the estimate and its
    interval: ``n_eval_p`` of P and ``n_eval_q`` of Q, each ``n_eval`` when not given (a
    generator side can afford many more samples than a finite data set can spare; a finite
    side's size must leave items for training). ``interval``: ``normal`` (Welch t), ``bernstein``
    (two-sample empirical Bernstein with the certified a-priori range: conservative, a
    finite-sample guarantee) or ``bootstrap`` (both sides resampled independently); with
    ``paired`` (equal sizes only) the older one-sample intervals on ``f(x_i) - f(y_i)``.
    ``train_subset``: also evaluate as many training items of each side, to diagnose whether the
    bound is limited by generalisation (never reported as the bound).
    ``ot_samples`` samples of each side give the exact empirical OT reference (0 disables it);
    ``ot_floor`` adds the same computation for P against a disjoint sample of P.
    """

    n_eval: PositiveInt = 4096
    n_eval_p: Optional[PositiveInt] = None
    n_eval_q: Optional[PositiveInt] = None
    batch_size: PositiveInt = 1024
    confidence: ClosedUnitInterval = 0.95
    interval: Literal["normal", "bernstein", "bootstrap"] = "normal"
    paired: bool = False
    train_subset: bool = True
    ot_samples: NonNegativeInt = 2000
    ot_floor: bool = True
    empirical_lipschitz_samples: NonNegativeInt = 512

    def sizes(self) -> tuple[int, int]:
        """``(n_eval_p, n_eval_q)``: the held-out sizes of P and Q, ``n_eval`` where not given."""
        n_p = self.n_eval if self.n_eval_p is None else self.n_eval_p
        n_q = self.n_eval if self.n_eval_q is None else self.n_eval_q
        return int(n_p), int(n_q)


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
        hint += f" Known sources (p, q): {', '.join(SOURCES)}; toy problems (toy): {', '.join(TOY_PROBLEMS)}"
        hint += f"; known-W1 pairs around a source (toy): {', '.join(c.__name__ for c in PAIRS.values())}."
    return f"Invalid configuration: {text.rstrip('.')}.{hint}"


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
    for key in ("n_eval", "n_eval_p", "n_eval_q"):
        n = getattr(cfg.eval, key)
        if n is not None and n < 2:
            raise ConfigError(
                f"Invalid configuration: eval.{key} must be at least 2 (a confidence interval needs two held-out "
                f"samples of each side; thousands are usual); got {n}."
            )
    n_p, n_q = cfg.eval.sizes()
    if cfg.eval.paired and n_p != n_q:
        raise ConfigError(
            f"Invalid configuration: eval.paired pairs the held-out samples of P and Q index by index, so their "
            f"sizes must be equal; got {n_p} (P) and {n_q} (Q). Set eval.paired false (the two-sample intervals "
            "allow unequal sizes) or give equal eval.n_eval_p and eval.n_eval_q."
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
        _check_yaml_mapping(path)
        args += ["--config", str(path)]
    return parser.parse_args(args + list(overrides))


def _check_yaml_mapping(path: Path) -> None:
    """Raise :class:`ConfigError` naming ``path`` unless it holds a YAML mapping of config keys."""
    import yaml  # jsonargparse's own YAML library, needed only when a file is given

    expected = (
        "Expected a YAML mapping of config keys with a toy problem ('toy: {class_path: ThreeCones}') or two "
        "sources ('p: ...' and 'q: ...'), as in configs/toy/three-cones.yaml."
    )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {str(path)!r} is not a text file (not UTF-8). {expected}") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML{at}: {problem}. {expected}") from None
    if data is None:
        raise ConfigError(f"Config file {str(path)!r} is empty (or only comments). {expected}")
    if not isinstance(data, dict):
        shown = repr(data) if len(repr(data)) <= 60 else repr(data)[:57] + "..."
        kind = {"list": "list", "str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(
            type(data).__name__, type(data).__name__
        )
        raise ConfigError(f"Config file {str(path)!r} holds a YAML {kind} ({shown}), not a mapping. {expected}")


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


def config_dict(config: Union[str, os.PathLike, dict, None], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The parsed configuration as a dict (``class_path``/``init_args`` kept), checked against the
    dataclasses but without building anything (no data set is loaded): the form
    :func:`resolve_config` returns as its third value, for comparing two configurations."""
    if isinstance(config, EstimateConfig):
        raise ConfigError("a configuration to compare must be a YAML file or a dict, not an EstimateConfig")
    parser = build_parser()
    try:
        ns = _parse(parser, config, overrides)
    except ConfigError:
        raise
    except Exception as err:  # jsonargparse's ArgumentError
        cause = err.__cause__ or err
        raise ConfigError(_explain(parser, str(cause) if str(cause) else str(err))) from None
    ns.pop("config", None)
    return ns.as_dict()


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
