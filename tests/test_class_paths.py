"""Configurations written with the class paths of an earlier layout still load, through the registries.

Before problems had their own package, saved ``config.yaml`` and ``result.json`` files named them
``wdist.sources.toy.ThreeCones``, ``wdist.sources.pairs.AnchorPair``, ``wdist.sources.funnels.FunnelPair``
or ``wdist.sources.Translation`` (the path jsonargparse wrote then). Such a path names the registered
class by its last component; it must build the same problem, with the same exact W1, as the short name,
and a run saved with it must resume.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonargparse._util import import_object

from wdist.config import config_record, load_config, parse_config
from wdist.problems import PAIRS, TOY_PROBLEMS, current_class_paths
from wdist.resume import ResumePoint, check_resume_settings, saved_config
from wdist.sources import SOURCES

#: (old class_path, init_args) of saved configurations, each a registered name under an earlier module.
OLD = [
    ("wdist.sources.toy.ThreeCones", {}),
    ("wdist.sources.ThreeCones", {"radius": 0.5}),
    ("wdist.sources.Translation", {"dim": 3, "shift": [0.0, 1.0]}),
    ("wdist.sources.toy.OneDimensional", {"q": "laplace"}),
    ("wdist.sources.pairs.AnchorPair", {"source": {"class_path": "wdist.sources.images.Digits",
                                                   "init_args": {"limit": 80}}, "anchors": 4}),
    ("wdist.sources.pairs.TranslatedPair", {"source": {"class_path": "wdist.sources.toy.Gaussian",
                                                       "init_args": {"dim": 3}}, "norm": 2.0}),
    ("wdist.sources.funnels.FunnelPair", {"dim": 4, "funnels": 2, "items": 40, "samples": 100}),
]  # fmt: skip


def _short(node):
    """The same configuration with every class_path cut to its short name (how configs/ name them)."""
    if isinstance(node, list):
        return [_short(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _short(v) for k, v in node.items()}
    if isinstance(out.get("class_path"), str):
        out["class_path"] = out["class_path"].rsplit(".", 1)[1]
    return out


@pytest.mark.parametrize("path,args", OLD, ids=[p for p, _ in OLD])
def test_an_old_class_path_builds_the_problem_its_short_name_builds(path: str, args: dict, tmp_path: Path) -> None:
    old = {"toy": {"class_path": path, "init_args": args}, "train": {"steps": 2}}
    with pytest.raises((ImportError, AttributeError)):  # the earlier module does not hold the class any more
        import_object(path)
    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(old), encoding="utf-8")
    then, now = load_config(file).sides(), load_config(_short(old)).sides()
    assert then.exact_w1 == now.exact_w1 and then.exact_w1_method == now.exact_w1_method
    assert then.p.describe() == now.p.describe() and then.q.describe() == now.q.describe()


def test_old_source_paths_as_p_and_q() -> None:
    cfg = parse_config({"p": {"class_path": "wdist.sources.toy.Gaussian", "init_args": {"dim": 3}},
                        "q": {"class_path": "wdist.sources.toy.Uniform", "init_args": {"dim": 3}}})  # fmt: skip
    assert (cfg.p.cls, cfg.q.cls) == (SOURCES["Gaussian"], SOURCES["Uniform"])


def test_every_registered_class_maps_to_a_path_that_imports_it() -> None:
    for name, cls in {**SOURCES, **TOY_PROBLEMS, **{c.__name__: c for c in PAIRS.values()}}.items():
        for old in (f"wdist.sources.{name}", f"wdist.sources.toy.{name}", f"wdist.problems.{name}"):
            path = current_class_paths({"p": {"class_path": old}})["p"]["class_path"]
            assert import_object(path) is cls, (old, path)
            assert current_class_paths({"toy": old}) == {"toy": path}  # the path alone, as --toy takes it
    kept = {"p": {"class_path": "mypackage.sources.Digits", "init_args": {"x": 1}}, "seed": "wdist.sources.Digits"}
    assert current_class_paths(kept) == kept  # another package's class of the same name is its own; not a source
    unknown = {"q": {"class_path": "wdist.sources.toy.NoSuchClass"}}
    assert current_class_paths(unknown) == unknown  # left for jsonargparse to refuse, naming it


def test_a_run_saved_with_old_class_paths_resumes(tmp_path: Path) -> None:
    cfg = parse_config({"toy": {"class_path": "AnchorPair", "init_args": {"source": {"class_path": "Digits"}}}})
    now = config_record(cfg)
    then = yaml.safe_load(yaml.safe_dump(now))
    then["toy"]["class_path"] = "wdist.sources.AnchorPair"  # what the earlier layout wrote
    then["toy"]["init_args"]["source"]["class_path"] = "wdist.sources.images.Digits"
    assert then != now
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(then, sort_keys=False), encoding="utf-8")
    saved = saved_config(ResumePoint(tmp_path, tmp_path / "config.yaml", None))
    check_resume_settings(saved, now, tmp_path, "the same configuration")  # raises when they differ


@pytest.mark.parametrize(("base", "problems"), [("TransportPair", "AnchorPair"), ("MassesVsSpheres", "ThreeCones")])
def test_a_base_that_only_shares_code_is_refused_by_name(base: str, problems: str) -> None:
    """A class that shares code between problems is not a problem: naming it as ``toy`` is bad input
    (a ConfigError naming it and the problems to name instead), not a failure deep in the run."""
    from wdist.config import ConfigError

    with pytest.raises(ConfigError, match=rf"{base} shares code between problems.*{problems}"):
        load_config({"toy": {"class_path": base}}).sides
