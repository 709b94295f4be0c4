"""The validated configuration of one estimate, and how YAML files and overrides become one.

Configs are YAML files parsed by jsonargparse against the dataclasses below, so that every key
and value is checked against a type-hinted signature: an unknown key, a value of the wrong type
or outside its range is an error naming it. Sources use jsonargparse's subclass syntax::

    p: {class_path: Digits}
    q: {class_path: Generator, init_args: {name: digits/wgan-gp-8}}

or, for the analytic benchmarks, one toy problem that defines both P and Q::

    toy: {class_path: ThreeCones}

Overrides on the command line use dots: ``--train.steps 200 --q.init_args.checkpoint G.pth``.

A configuration is parsed once (:func:`parse_config`; no source is built: ``p``, ``q`` and ``toy``
are :class:`SourceSpec`) and settled once (:func:`settle`: each source built at its first use, the
default critic named). Commands that run several estimates (compare, track, ``critic.name: auto``)
derive their configurations from that one with :func:`dataclasses.replace`; the derived
configurations share the built sources. :data:`COUNTS` counts parses and builds.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from jsonargparse._loaders_dumpers import yaml_load  # jsonargparse's own YAML reading (1e-3 is a float)
from jsonargparse._util import import_object  # the resolver jsonargparse itself uses for class_path
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

import critics
from wdist.auto import AUTO
from wdist.errors import ConfigError
from wdist.ot import max_exact_samples
from wdist.problems import PAIRS, TOY_PROBLEMS, ToyProblem, current_class_paths
from wdist.sources import SOURCES, Source, check_compatible

__all__ = [
    "SourceSpec",
    "check_ot_fits",
    "COUNTS",
    "config_record",
    "config_yaml",
    "parse_config",
    "settle",
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
    "default_critic",
    "resolve_relative_paths",
    "read_config_file",
    "IMAGE_DEFAULT_CRITIC",
    "VECTOR_DEFAULT_CRITIC",
    "PATH_KEYS",
]


#: The critic of a configuration that names none, for image-shaped data (C, H, W): the critic of the
#: offline digits job (``configs/digits/default.yaml``), the cone critic on the pixels (a learned
#: mixture of a linear part, minima of cones placed on training items and radial cones: the shape
#: of a W1 potential; docs/critics.md, "Which critic?").
IMAGE_DEFAULT_CRITIC: tuple[str, dict[str, Any]] = ("cones", {})
#: The critic of a configuration that names none, for flat vectors (the toys): a Björck-orthogonal MLP.
VECTOR_DEFAULT_CRITIC: tuple[str, dict[str, Any]] = ("bjorck-mlp", {})


def default_critic(shape: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """The critic (name, options) used when the configuration names none: :data:`IMAGE_DEFAULT_CRITIC`
    for samples of shape ``(C, H, W)``, else :data:`VECTOR_DEFAULT_CRITIC` (never an MLP that
    flattens an image)."""
    name, options = IMAGE_DEFAULT_CRITIC if len(tuple(shape)) == 3 else VECTOR_DEFAULT_CRITIC
    return name, dict(options)


@dataclass
class CriticConfig:
    """Which critic to train: a registry name from ``critics.available()`` and its options.

    ``name`` left out (``None``): the default for the data's shape (:func:`default_critic`:
    ``cones`` for images, ``bjorck-mlp`` for vectors); ``options`` given without a
    name apply to that default critic instead of its default options. ``auto`` (no options):
    ``wdist estimate`` trains the candidates of :mod:`wdist.auto` and reports the one with the best
    select-split bound.
    """

    name: Optional[str] = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How the critic is trained (maximising E_P f - E_Q f).

    ``loss``: ``kr`` is the plain Kantorovich–Rubinstein objective; ``wgan-gp`` adds
    ``gp_lambda * (||grad f(x_hat)|| - 1)^2`` on random interpolates x_hat; ``None`` (the default):
    the objective the critic family is made for (``critics.default_loss``: ``wgan-gp`` for the
    unconstrained ``gp-*`` critics, ``kr`` for the Lipschitz ones). A loss set explicitly wins, and
    the result says when it differs from the family's.
    ``schedule``: ``cosine`` (the default: the learning rate falls to 0 over ``steps``), ``none``
    or ``step`` (x0.1 at 50% and 75%). Cosine is the default because on finite data the critic
    fits its training items as training goes on, and a decaying rate lets the select split's
    best state generalise: measured on a 64-D / 4-funnel pair of 20,000 items per side
    (``configs/pairs/funnels-64-4-20k.yaml``, ``bjorck-mlp`` width 256, 2000 steps, seeds 0 and 1):
    0.846 and 0.834 of W1 with cosine, 0.796 and 0.823 without (docs/heldout-statistics.md).
    ``threads``: torch threads per process; ``auto`` chooses from the critic's work per step and
    the cores this process may use (one thread for small critics; see :mod:`wdist.threads`).

    Selection (every ``eval_every`` steps the critic is evaluated on the select split, never on
    the test split): ``select``: ``best`` reports the state with the highest select-split lower
    bound (ties: the earliest), ``last`` the final state; ``steps`` is the most steps trained, and
    ``patience`` (``None``: never) stops training once that many evaluations in a row have not
    improved on the best. ``average``: ``none``, ``ema`` (an exponential moving average of the
    critic's parameters, ``w_avg <- ema_decay w_avg + (1 - ema_decay) w`` after every step) or
    ``swa`` (their equally weighted mean from step ``swa_start * steps`` on); the averaged weights
    are the ones evaluated, certified and reported.
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
    schedule: Literal["none", "cosine", "step"] = "cosine"
    eval_every: PositiveInt = 200
    checkpoint_every: Optional[PositiveInt] = None
    threads: Union[Literal["auto"], PositiveInt] = "auto"
    select: Literal["best", "last"] = "best"
    patience: Optional[PositiveInt] = None
    average: Literal["none", "ema", "swa"] = "none"
    ema_decay: PositiveFloat = 0.99
    swa_start: NonNegativeFloat = 0.5


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
    """The select and test splits, the held-out statistics and the references.

    Every side is split three ways (:mod:`wdist.splits`): training items, a *select* split that
    every evaluation during training uses (the curve, the choice of the reported step, early
    stopping) and a *test* split read once, at the end, for the reported bound and its interval.
    Test sizes: ``n_eval_p`` of P and ``n_eval_q`` of Q, each ``n_eval`` when not given (a
    generator side can afford many more samples than a finite data set can spare). Select sizes:
    ``n_select_p`` and ``n_select_q``, each ``n_select`` when not given, else, for a generator or
    toy side, the smaller of 1024 and its test size, and for a data set the smallest of 256, its
    test size and a tenth of its items (:func:`wdist.splits.default_select_size`).
    A finite side's size must leave items for training after both. ``aligned``: row ``i`` of Q
    belongs with row ``i`` of P (two files of equal length made from the same rows or latents), so
    both are split with one permutation and no held-out item's partner is trained on (a Q = T(P)
    of a data set is always split so); two equally long finite sides that look paired but were
    split independently get a warning in the result. ``interval``: ``normal`` (Welch t), ``bernstein``
    (two-sample empirical Bernstein with the certified a-priori range: conservative, a
    finite-sample guarantee) or ``bootstrap`` (both sides resampled independently); with
    ``paired`` (equal test sizes only) the older one-sample intervals on ``f(x_i) - f(y_i)`` (on
    the select curve too where its two sides are equally large).
    ``train_subset``: also evaluate as many training items of each side as it has select items, to
    diagnose whether the bound is limited by generalisation (never reported as the bound).
    ``ot_samples`` samples of each side give the exact empirical OT reference (0 disables it);
    ``ot_floor`` adds the same computation for P against a disjoint sample of P.
    ``heldout_draw``: which independent held-out draw an infinite side (a generator, a toy
    sampler) uses: 0 is the run's own; ``wdist track`` gives checkpoint ``k`` of a series draw
    ``k``, so every checkpoint is evaluated on fresh samples. A finite data set's split does not
    depend on it (its held-out parts stay out of every critic's training).
    """

    n_eval: PositiveInt = 4096
    n_eval_p: Optional[PositiveInt] = None
    n_eval_q: Optional[PositiveInt] = None
    n_select: Optional[PositiveInt] = None
    n_select_p: Optional[PositiveInt] = None
    n_select_q: Optional[PositiveInt] = None
    aligned: bool = False
    batch_size: PositiveInt = 1024
    confidence: ClosedUnitInterval = 0.95
    interval: Literal["normal", "bernstein", "bootstrap"] = "normal"
    paired: bool = False
    train_subset: bool = True
    ot_samples: NonNegativeInt = 2000
    ot_floor: bool = True
    empirical_lipschitz_samples: NonNegativeInt = 512
    heldout_draw: NonNegativeInt = 0

    def sizes(self) -> tuple[int, int]:
        """``(n_eval_p, n_eval_q)``: the test sizes of P and Q, ``n_eval`` where not given."""
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


#: How often this process built the estimate's parser (``"parse"``) and each configured source or
#: toy problem (``"build:Digits"``, ...): what one command costs, counted where it happens.
COUNTS: Counter = Counter()


class SourceSpec:
    """A configured source or toy problem before it is built: its class and its init arguments as
    jsonargparse validated them (``class_path``/``init_args``, nested sources kept as such).

    Parsing a configuration builds no source (no data set is read, no weights are loaded);
    :meth:`build` does, once: every configuration derived from this one with
    :func:`dataclasses.replace` shares the built object. :meth:`with_args` gives a spec with other
    arguments (built anew when used).
    """

    def __init__(self, namespace: Namespace, kind: type) -> None:
        self._namespace = namespace.clone()
        self.kind = kind  # the base class it was validated against: Source or ToyProblem
        self._built: Any = None

    @property
    def cls(self) -> type:
        """The configured class (``wdist.sources.Digits``, ...), imported, not built."""
        return import_object(self._namespace["class_path"])

    @property
    def name(self) -> str:
        """The short name of the configured class (``Digits``)."""
        return self._namespace["class_path"].rsplit(".", 1)[-1]

    def record(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}`` as a configuration file holds it."""
        return _plain(self._namespace.as_dict())

    def with_args(self, **init_args: Any) -> "SourceSpec":
        """This spec with ``init_args`` replaced by the given values (a new, unbuilt spec)."""
        namespace = self._namespace.clone()
        for key, value in init_args.items():
            namespace[f"init_args.{key}"] = value
        return SourceSpec(namespace, self.kind)

    def build(self) -> Any:
        """The source (or toy problem), built at the first call and kept.

        Raises
        ------
        ConfigError
            The class refused its arguments (a missing file, a bad value): its message, and what is allowed.
        """
        if self._built is None:
            parser = ArgumentParser(exit_on_error=False, default_env=False)
            parser.add_argument("--source", type=self.kind)
            try:
                self._built = parser.instantiate(Namespace(source=self._namespace.clone()))["source"]
            except Exception as err:  # the class's own error on init, with jsonargparse's context
                cause = err.__cause__ or err
                raise ConfigError(_explain(build_parser(count=False), str(cause) if str(cause) else str(err))) from None
            COUNTS[f"build:{self.name}"] += 1
        return self._built

    def __repr__(self) -> str:
        return f"SourceSpec({self._namespace['class_path']!r}, built={self._built is not None})"


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and paths as text: what YAML and JSON files hold."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for kind in (bool, int, float, str):  # jsonargparse's restricted types (PositiveInt, ...) as the plain ones
        if isinstance(value, kind):
            return kind(value)
    return value


def _built(value: Union[SourceSpec, Any, None]) -> Any:
    return value.build() if isinstance(value, SourceSpec) else value


@dataclass(frozen=True)
class Sides:
    """The two distributions of a configuration, checked compatible, with W1 where known exactly."""

    p: Source
    q: Source
    exact_w1: Optional[float] = None
    exact_w1_method: Optional[str] = None


@dataclass
class EstimateConfig:
    """Everything one estimate needs. Give either ``toy`` or both ``p`` and ``q``.

    The type hints of ``toy``, ``p`` and ``q`` are what a configuration is checked against; a parsed
    configuration holds a :class:`SourceSpec` there (built at its first use, :meth:`sides`), a
    configuration made in Python may hold the objects themselves. Configurations derived from one
    with :func:`dataclasses.replace` share its built sources.
    """

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
        """P and Q (of the toy problem, or the two sources), checked to share shape and domain.

        A configured source (:class:`SourceSpec`) is built at its first use and kept."""
        if self.toy is not None:
            toy = _built(self.toy)
            sides = Sides(toy.p, toy.q, toy.exact_w1(), toy.exact_w1_method())
        else:
            assert self.p is not None and self.q is not None
            sides = Sides(_built(self.p), _built(self.q))
        check_compatible(sides.p, sides.q)
        return sides


def default_config_path() -> Path:
    """``configs/digits/default.yaml`` of the repository this package is installed from."""
    return Path(__file__).resolve().parent.parent / "configs" / "digits" / "default.yaml"


def build_parser(prog: str = "wdist estimate", count: bool = True) -> ArgumentParser:
    """The jsonargparse parser for :class:`EstimateConfig` (``--config FILE`` plus dotted overrides).
    ``count``: whether this build is a parse of a configuration (:data:`COUNTS`; not for help texts)."""
    if count:
        COUNTS["parse"] += 1
    # no abbreviations: a misspelt key such as --critic.opt must be an error, not --critic.options
    parser = ArgumentParser(prog=prog, exit_on_error=False, default_env=False, allow_abbrev=False)
    parser.add_argument(
        "--config", action=ActionConfigFile,
        help="YAML experiment file; relative input paths in it (data, checkpoints) are read from its folder",
    )  # fmt: skip
    parser.add_class_arguments(EstimateConfig, None, sub_configs=True)
    return parser


#: Options jsonargparse adds to every parser; no user key.
_INTERNAL_OPTIONS = ("help", "config", "print_config", "print_shtab")


def _known_keys(parser: ArgumentParser, extra: Sequence[str] = ()) -> list[str]:
    """The dotted keys a user may set (the parser's own, never its internal options), and ``extra``."""
    keys = list(extra)
    for action in parser._actions:  # the parser's own list of accepted dotted keys
        for opt in action.option_strings:
            if opt.startswith("--") and opt[2:].split(".")[0] not in _INTERNAL_OPTIONS:
                keys.append(opt[2:])
    return sorted(set(keys))


def _section_keys(keys: Sequence[str], name: str) -> tuple[str, list[str]]:
    """The innermost section of the misspelt dotted key ``name`` that has keys, and those keys:
    ``critic.option.width`` -> ``("critic", ["critic.name", "critic.options"])``; ``("", top-level
    sections)`` when no section of it exists."""
    parts = name.split(".")[:-1]
    while parts:
        section = ".".join(parts)
        inside = [k for k in keys if k.startswith(section + ".") and "." not in k[len(section) + 1 :]]
        if inside:
            return section, inside
        parts.pop()
    return "", sorted({k.split(".")[0] for k in keys})


def _explain(parser: ArgumentParser, message: str, extra_keys: Sequence[str] = ()) -> str:
    """Turn a jsonargparse message into one paragraph that also lists what is allowed (``extra_keys``:
    keys accepted besides the parser's, such as a comparison's ``critics`` and ``seeds``)."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    keys = _known_keys(parser, extra_keys)
    names = [
        a or b
        for a, b in re.findall(
            r"(?:Key|key) \"?'?([\w.\-]+)\"?'? is not expected|unrecognized arguments: --?([\w.\-]+)", text
        )
    ]
    names += [f"{g}.{o}" for g, o in re.findall(r"Group '([\w.\-]+)' does not accept option '([\w.\-]+)'", text)]
    hint = ""
    if names:
        section, siblings = _section_keys(keys, names[0])
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
    own_class = re.search(r"class_path 'wdist\.(compare_spec|config)\.", text)  # a dataclass, not a source
    if ("class_path" in text or "import path" in text) and not own_class:
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


def check_ot_fits(ot_samples: int) -> None:
    """Raise :class:`ConfigError` before any training if an exact-OT reference of ``ot_samples``
    per side would not fit in this machine's memory (the cost matrix and plan take 16 n^2 bytes)."""
    largest = max_exact_samples()
    if ot_samples and largest is not None and ot_samples > largest:
        raise ConfigError(
            f"Invalid configuration: eval.ot_samples={ot_samples} needs {16 * ot_samples**2 / 2**30:.1f} GiB "
            f"for the exact-OT cost matrix and plan (16 x n^2 bytes), more than half of this machine's available "
            f"memory; use eval.ot_samples <= {largest} (or 0 to skip the reference)."
        )


def _validate(cfg: EstimateConfig) -> EstimateConfig:
    """Check what can be checked without building a source; the rest is :func:`settle`'s."""
    if cfg.toy is not None and (cfg.p is not None or cfg.q is not None):
        raise ConfigError("Invalid configuration: give either 'toy' or both 'p' and 'q', not both.")
    if cfg.toy is None and (cfg.p is None or cfg.q is None):
        missing = [k for k in ("p", "q") if getattr(cfg, k) is None]
        raise ConfigError(
            f"Invalid configuration: missing {' and '.join(map(repr, missing))}. Give a toy problem "
            "('toy: {class_path: ThreeCones}') or two sources ('p: {class_path: Digits}', "
            "'q: {class_path: Generator, init_args: {name: digits/wgan-gp-8}}')."
        )
    if cfg.critic.name == AUTO:
        if cfg.critic.options:
            raise ConfigError(
                f"Invalid configuration: critic.name auto chooses among candidates that each have their own "
                f"options (wdist/auto.py); critic.options must be empty with it, got {dict(cfg.critic.options)!r}. "
                "Options a config file gives for another critic are cleared with --critic.options '{}'; to set "
                "options, name one critic."
            )
    elif cfg.critic.name is not None:
        check_critic(cfg.critic.name, cfg.critic.options)
    for key in ("n_eval", "n_eval_p", "n_eval_q", "n_select", "n_select_p", "n_select_q"):
        n = getattr(cfg.eval, key)
        if n is not None and n < 2:
            raise ConfigError(
                f"Invalid configuration: eval.{key} must be at least 2 (a confidence interval needs two held-out "
                f"samples of each side; thousands are usual); got {n}."
            )
    if not 0.0 < cfg.train.ema_decay < 1.0:
        raise ConfigError(
            f"Invalid configuration: train.ema_decay must lie strictly between 0 and 1 (the weight of the running "
            f"average at each step, e.g. 0.99); got {cfg.train.ema_decay}."
        )
    if not 0.0 <= cfg.train.swa_start < 1.0:
        raise ConfigError(
            f"Invalid configuration: train.swa_start is the fraction of train.steps after which SWA starts "
            f"averaging, in [0, 1); got {cfg.train.swa_start}."
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
    check_ot_fits(cfg.eval.ot_samples)
    if cfg.train.eval_every > cfg.train.steps:  # a new section: configurations derived from one share theirs
        cfg.train = replace(cfg.train, eval_every=cfg.train.steps)
    for key in SETTINGS_SECTIONS:
        setattr(cfg, key, _builtin_fields(getattr(cfg, key)))
    return cfg


#: The sections of an :class:`EstimateConfig` that hold settings (not sources).
SETTINGS_SECTIONS = ("critic", "train", "trainer", "eval", "logger")


def _builtin(value: Any) -> Any:
    """``value`` in builtin types, containers kept: jsonargparse's restricted numbers (PositiveInt,
    ...) as the plain ones, so that a checkpoint holding them (hyperparameters, optimiser state)
    loads with ``torch.load(weights_only=True)``."""
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_builtin(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _builtin(v) for k, v in value.items()}
    return value


def _builtin_fields(section: Any) -> Any:
    """A settings dataclass with every field in builtin types (:func:`_builtin`)."""
    return replace(section, **{f.name: _builtin(getattr(section, f.name)) for f in fields(section)})


#: Arguments of sources (``p``, ``q``, ``toy`` and the sources nested in them) that name input files
#: or folders: relative values in a YAML file are read from the file's folder.
PATH_KEYS = ("path", "root", "checkpoint")
#: Generator names that carry a file path after their prefix.
_PATH_PREFIXES = ("torchscript:",)


def resolve_relative_paths(data: dict[str, Any], base: Union[str, os.PathLike]) -> dict[str, Any]:
    """A copy of the configuration mapping ``data`` (read from a file in the folder ``base``) in
    which every relative input path of a source is made absolute against ``base``.

    Input paths are the :data:`PATH_KEYS` arguments (``path`` of a ``TensorFile``, ``root`` of an
    image data set or folder, ``checkpoint`` of a ``Generator``) and the file of a
    ``torchscript:`` generator name, in ``init_args`` of ``p``, ``q``, ``toy`` and of any source
    nested in them. A path starting with ``~`` is left for the source to expand. Outputs (``out``)
    and paths given on the command line keep the working directory.
    """
    folder = Path(base).resolve()

    def absolute(text: str) -> str:
        if text.startswith("~") or "://" in text or Path(text).is_absolute():
            return text
        return str(folder / text)

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        args = out.get("init_args")
        if isinstance(args, dict):
            for key in PATH_KEYS:
                if isinstance(args.get(key), str) and args[key]:
                    args[key] = absolute(args[key])
            name = args.get("name")
            for prefix in _PATH_PREFIXES:
                if isinstance(name, str) and name.startswith(prefix) and len(name) > len(prefix):
                    args["name"] = prefix + absolute(name[len(prefix) :])
        return out

    return {k: walk(v) if k in ("p", "q", "toy") else v for k, v in data.items()}


def _parse(parser: ArgumentParser, config: Union[str, os.PathLike, dict, None], overrides: Sequence[str]) -> Namespace:
    import yaml  # jsonargparse's own YAML library

    if config is None:
        config = default_config_path()
    if not isinstance(config, dict):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(
                f"Config file {str(path)!r} does not exist (resolved to {str(path.resolve())!r}; expected a YAML "
                "file such as configs/toy/three-cones.yaml)."
            )
        config = read_config_file(path)
    config = current_class_paths(config)  # a class_path of an earlier layout names the class by its registered name
    return parser.parse_args(["--config", yaml.safe_dump(config, sort_keys=False), *overrides])


def read_config_file(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """The mapping of a YAML configuration file, read as jsonargparse reads YAML (``1e-3`` is a
    number), with its relative input paths made absolute against its folder
    (:func:`resolve_relative_paths`).

    Raises
    ------
    ConfigError
        The file is not UTF-8 text, not valid YAML, empty, or not a mapping (the message names it).
    """
    path = Path(path)
    _check_yaml_mapping(path)
    return resolve_relative_paths(yaml_load(path.read_text(encoding="utf-8")), path.parent)


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


def settle(cfg: EstimateConfig) -> EstimateConfig:
    """Build the configuration's sources (once: :meth:`SourceSpec.build`) and name the critic a
    configuration leaves out (:func:`default_critic` for P's shape; options given alone apply to
    it). Returns ``cfg``, settled in place; settling again builds nothing. That P and Q share shape
    and domain is checked where a run takes them (:meth:`EstimateConfig.sides`).

    Raises
    ------
    ConfigError
        A source refused its arguments, or a critic option is unknown.
    """
    built = [_built(x) for x in (cfg.toy, cfg.p, cfg.q) if x is not None]
    if cfg.critic.name is None:
        name, options = default_critic((built[0].p if cfg.toy is not None else built[0]).shape)
        cfg.critic = CriticConfig(name, dict(cfg.critic.options) or options)
        check_critic(cfg.critic.name, cfg.critic.options)
    return cfg


def parse_config(
    config: Union[str, os.PathLike, dict, None] = None, overrides: Sequence[str] = (), extra_keys: Sequence[str] = ()
) -> EstimateConfig:
    """Parse a YAML file (``None``: the bundled default) or mapping with dotted ``overrides`` into an
    :class:`EstimateConfig`, checked against the dataclasses and the sources' signatures. Builds no
    source: ``p``, ``q`` and ``toy`` are :class:`SourceSpec` (:func:`settle` builds them).
    ``extra_keys``: keys the caller accepts besides the configuration's (listed in errors).

    Raises
    ------
    ConfigError
        Naming the offending key or value and listing what is allowed.
    """
    parser = build_parser()
    try:
        ns = _parse(parser, config, overrides)
        specs = {k: None if ns[k] is None else SourceSpec(ns[k], ToyProblem if k == "toy" else Source)
                 for k in ("toy", "p", "q")}  # fmt: skip
        for k in specs:
            ns[k] = None
        ns.pop("config", None)
        init = parser.instantiate(ns)
    except ConfigError:
        raise
    except Exception as err:  # jsonargparse raises ArgumentError
        cause = err.__cause__ or err
        raise ConfigError(_explain(parser, str(cause) if str(cause) else str(err), extra_keys)) from None
    cfg = EstimateConfig(**{k: init[k] for k in EstimateConfig.__dataclass_fields__ if k not in specs}, **specs)
    return _validate(cfg)


def resolve_config(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None, overrides: Sequence[str] = ()
) -> EstimateConfig:
    """Parse (:func:`parse_config`, once) and settle (:func:`settle`: the sources built, once): the
    configuration a run trains with. An :class:`EstimateConfig` given directly is validated and settled.

    Raises
    ------
    ConfigError
        Naming the offending key or value and listing what is allowed.
    """
    if isinstance(config, EstimateConfig):
        if overrides:
            raise ConfigError("overrides can only be applied to a YAML file or a dict, not to an EstimateConfig")
        return settle(_validate(config))
    return settle(parse_config(config, overrides))


def config_record(cfg: EstimateConfig) -> dict[str, Any]:
    """The configuration as a mapping with the layout of a configuration file (``class_path`` and
    ``init_args`` for configured sources; a source object given directly is described in one line):
    what ``config.yaml`` holds and results record."""
    rec: dict[str, Any] = {}
    for key in EstimateConfig.__dataclass_fields__:
        value = getattr(cfg, key)
        if isinstance(value, SourceSpec):
            rec[key] = value.record()
        elif is_dataclass(value) and not isinstance(value, type):
            rec[key] = _plain(asdict(value))
        elif value is None or isinstance(value, (int, float, str)):
            rec[key] = _plain(value)
        else:
            rec[key] = value.describe()
    return rec


def config_yaml(cfg: EstimateConfig) -> Optional[str]:
    """``config.yaml`` of a run (:func:`config_record` as YAML), read back by ``--resume``; ``None``
    when a source was given as an object (a configuration file cannot rebuild it)."""
    import yaml  # jsonargparse's own YAML library

    if any(v is not None and not isinstance(v, SourceSpec) for v in (cfg.toy, cfg.p, cfg.q)):
        return None
    return yaml.safe_dump(config_record(cfg), sort_keys=False)


def load_config(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None, overrides: Sequence[str] = ()
) -> EstimateConfig:
    """Parse, validate and settle a configuration (:func:`resolve_config`).

    Parameters
    ----------
    config : path to a YAML file, a dict of the same structure, an :class:`EstimateConfig`, or
        ``None`` for the bundled default (``configs/digits/default.yaml``).
    overrides : command-line style overrides, e.g. ``["--train.steps", "100"]``.
    """
    return resolve_config(config, overrides)
