"""`wdist compare`: every critic and seed in the table, JSON and plot; critics that are not 1-Lipschitz marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from wdist.cli import main
from wdist.compare import compare
from wdist.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def _tiny(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "compare" / "digits.yaml").read_text())
    data["critics"] = [c for c in data["critics"] if c["label"] in ("bcop", "gp")]
    data["seeds"] = [0]  # the test asks for two on the command line
    data["train"].update(steps=12, eval_every=6)
    data["eval"].update(n_eval=200, ot_samples=300)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_compare_two_critics_two_seeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cmp"
    code = main(["compare", "--config", str(_tiny(tmp_path)), "--seeds", "[0, 1]", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    md = (out / "comparison.md").read_text()
    assert printed.startswith(md.strip())
    assert f"wrote {out / 'comparison.md'}, comparison.json, comparison.png" in printed  # where its files are
    rows = {
        line.split("|")[1].strip().split(" ")[0]: line
        for line in md.splitlines()
        if line.startswith("| bcop") or line.startswith("| gp")
    }
    assert set(rows) == {"bcop", "gp"}
    assert "| yes |" in rows["bcop"]
    assert "| no (L = " in rows["gp"] and "(not a bound: L > 1)" in rows["gp"] and "NOT certified" not in rows["gp"]
    data = json.loads((out / "comparison.json").read_text())
    assert {r["label"] for r in data["rows"]} == {"bcop", "gp"}
    for label in ("bcop", "gp"):
        runs = data["runs"][label]
        assert sorted(r["run"]["config"]["seed"] for r in runs) == [0, 1]
        for r in runs:
            assert r["bound"]["lower_bound"] == pytest.approx(
                r["bound"]["estimate"] / r["bound"]["lipschitz_certificate"]
            )
            assert (out / label / f"seed{r['run']['config']['seed']}" / "result.json").exists()
    for row in data["rows"]:  # the smallest per-seed lower end, the most conservative statement
        los = [r["bound"]["ci95_lo"] for r in data["runs"][row["label"]]]
        assert row["ci95_lo_min"] == min(los) <= row["ci95_lo_mean"]
    gp_row = next(r for r in data["rows"] if r["label"] == "gp")
    assert gp_row["one_lipschitz"] is False and gp_row["lipschitz_certificate_max"] > 1.001
    assert gp_row["certified"] is True  # estimate / L is a certified bound for every critic
    assert (out / "comparison.png").stat().st_size > 1000
    # per seed, the critic with the highest select-split bound is marked, in the JSON and in the table
    for i, seed in enumerate([0, 1]):
        select = {label: data["runs"][label][i]["selection"]["value"] for label in ("bcop", "gp")}
        assert data["runs"]["bcop"][i]["run"]["config"]["seed"] == seed
        assert data["chosen_on_select_split"][str(seed)] == max(select, key=select.get)
    for row in data["rows"]:
        marked = [int(s) for s, label in data["chosen_on_select_split"].items() if label == row["label"]]
        assert row["chosen_on_select_split"] == sorted(marked)
        assert ("**chosen on the select split**" in rows[row["label"]]) == bool(marked)
    assert "chosen on the select split: for each seed" in md


def test_compare_rejects_bad_spec(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "configs" / "compare" / "digits.yaml").read_text())
    data["critics"] = [{"label": "a", "name": "bcop-dcgan"}, {"label": "a", "name": "gp-dcgan"}]
    with pytest.raises(ConfigError, match="distinct"):
        compare(data, out=tmp_path)
    data["critics"] = [{"label": "a", "nme": "bcop-dcgan"}]
    with pytest.raises(ConfigError, match="nme"):
        compare(data, out=tmp_path)
    # a misspelt critic or option in a later entry stops the comparison before the first run trains
    data["critics"] = [{"label": "a", "name": "bcop-dcgan"}, {"label": "b", "name": "sn-mpl"}]
    with pytest.raises(ConfigError, match=r"critics\[1\] \('b'\)\.name.*sn-mpl"):
        compare(data, out=tmp_path)
    data["critics"] = [
        {"label": "a", "name": "bcop-dcgan"},
        {"label": "b", "name": "gp-dcgan", "options": {"widht": 1}},
    ]
    with pytest.raises(ConfigError, match=r"critics\[1\] \('b'\)\.options.*widht"):
        compare(data, out=tmp_path)
    assert not (tmp_path / "a").exists()  # nothing was trained


def test_every_image_critic_family_is_in_the_full_comparisons() -> None:
    """digits-all and the CIFAR-10 / STL-10 comparisons list every registered image critic, so a new
    family joins the comparison when it is registered."""
    import critics

    image = {name for name in critics.available() if critics.critic_inputs(name) == "images"} | {"cones"}
    for file in ("digits-all.yaml", "cifar10-lconvnet.yaml", "stl10-lconvnet.yaml"):
        data = yaml.safe_load((ROOT / "configs" / "compare" / file).read_text())
        listed = {c["name"] for c in data["critics"]}
        missing = image - listed - ({"gp-dcgan", "soc-lipconvnet"} if file != "digits-all.yaml" else set())
        assert not missing, f"{file} lacks {sorted(missing)}"
