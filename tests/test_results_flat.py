"""The flat result.json of earlier versions is read back: :meth:`Result.load` loses none of its numbers,
the summary prints them, and a track continues over step folders holding flat results.

``data/result_flat_bbabf54.json`` was written by the flat schema's last version (commit bbabf54):
``wdist estimate --config configs/toy/translation-2d.yaml --train.steps 8 --train.eval_every 4
--eval.n_eval 64 --eval.ot_samples 64 --eval.empirical_lipschitz_samples 32``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from wdist.bound import KINDS
from wdist.results import Exact, Result
from wdist.tracking import default_snapshots, track

FLAT = Path(__file__).parent / "data" / "result_flat_bbabf54.json"

#: The flat Result's keys read into the run record (its other keys are the bound's and the diagnosis').
FLAT_RUN_KEYS = (
    "steps", "seconds", "device", "critic", "loss", "p", "q", "shape", "domain", "versions", "config", "precision",
    "segments", "threads", "generators", "split",
)  # fmt: skip


def _flat_point(point: dict[str, Any]) -> dict[str, Any]:
    """A curve point as the flat version wrote it (``certificate``; the train subset as ``train_*``)."""
    row = {k: point[k] for k in ("step", "estimate", "stderr", "estimate_lo", "estimate_hi")}
    row["certificate"] = point["lipschitz_certificate"]
    row.update({k: point[k] for k in ("lower_bound", "lower_bound_lo", "lower_bound_hi", "n_eval_p", "n_eval_q")})
    train = point.get("train")
    if train is not None:
        row.update(
            train_estimate=train["estimate"], train_lower_bound=train["lower_bound"],
            train_lower_bound_lo=train["lower_bound_lo"], train_lower_bound_hi=train["lower_bound_hi"],
            train_gap=train["lower_bound"] - point["lower_bound"], n_train_p=train["n_eval_p"],
            n_train_q=train["n_eval_q"],
        )  # fmt: skip
    return row


#: Flat key -> (part of the nested record, its key there); ``train`` is the diagnosis' train subset
#: (``None`` in both forms when there is none).
FLAT_MOVED = {
    **{k: ("bound", k) for k in ("estimate", "lipschitz_certificate", "lower_bound", "stderr", "certified",
                                 "one_lipschitz", "n_eval_p", "n_eval_q")},
    "bound_split": ("bound", "split"), "bound_step": ("bound", "step"),
    **{k: ("diagnosis", k) for k in ("generalisation_gap", "limited_by")}, "diagnosis": ("diagnosis", "text"),
    "empirical_lipschitz": ("certificate", "empirical_lipschitz"), "certificate_layers": ("certificate", "layers"),
    "certificate_user_asserted": ("certificate", "user_asserted"),
    "train_estimate": ("train", "estimate"), "train_lower_bound": ("train", "lower_bound"),
    "n_train_p": ("train", "n_eval_p"), "n_train_q": ("train", "n_eval_q"),
}  # fmt: skip


def _interval(record: dict[str, Any] | None) -> list[float] | None:
    return None if record is None else [record["ci95_lo"], record["ci95_hi"]]


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    """The flat result.json (``dataclasses.asdict`` of the flat Result at bbabf54) of a nested record."""
    parts = {**data, "train": data["diagnosis"]["train"]}
    bound, exact = data["bound"], data["exact"]
    return {
        **{flat: None if parts[part] is None else parts[part][key] for flat, (part, key) in FLAT_MOVED.items()},
        "ci95": _interval(bound),
        "ci": {k: bound[k] for k in ("confidence", "method", "estimate_lo", "estimate_hi", "lower_bound_lo",
                                     "lower_bound_hi")},  # fmt: skip
        "train_ci95": _interval(parts["train"]),
        "verdict": data["verdict"],
        "exact_w1": None if exact is None else exact["w1"],
        "exact_w1_method": None if exact is None else exact["method"],
        **data["references"],
        **{k: data["run"][k] for k in FLAT_RUN_KEYS},
        "curve": [_flat_point(p) for p in data["curve"]],
        **{k: data[k] for k in ("notes", "selection", "auto")},
    }


def test_a_flat_result_is_read_without_losing_a_number() -> None:
    flat = json.loads(FLAT.read_text())
    res = Result.load(FLAT)
    assert _flat(res.to_dict()) == flat  # every key and value of the flat file, back from the nested record
    bound = res.bound
    assert (bound.lower_bound, bound.ci95, bound.step, bound.split) == (
        flat["lower_bound"], flat["ci95"], flat["bound_step"], "test"
    )
    assert bound.kind == KINDS[0] and bound.certified and bound.one_lipschitz
    assert res.exact == Exact(flat["exact_w1"], flat["exact_w1_method"])
    assert res.references.empirical_ot_w1 == flat["empirical_ot_w1"] and res.run.seconds == flat["seconds"]
    train = res.diagnosis.train
    assert train is not None and train.kind == KINDS[2] and train.ci95 == flat["train_ci95"]
    assert [p["lipschitz_certificate"] for p in res.curve] == [row["certificate"] for row in flat["curve"]]
    assert Result.from_dict(json.loads(res.to_json())).to_dict() == res.to_dict()  # and it saves nested
    table = res.format_table()
    assert f"{flat['lower_bound']:.4f}" in table and "test-split samples" in table and flat["critic"] in table


def test_older_flat_results_without_two_sizes_one_lipschitz_or_splits() -> None:
    """Older still: one held-out size ``n_eval``; ``certified`` meaning L <= 1 + 1e-3 (no
    ``one_lipschitz``); no splits (the bound was the ``held-out`` split's)."""
    flat = json.loads(FLAT.read_text())
    n = flat.pop("n_eval_p")
    flat.pop("n_eval_q"), flat.pop("one_lipschitz"), flat.pop("bound_split"), flat.pop("bound_step")
    flat["n_eval"] = n
    for verdict, certified in ((flat["verdict"], True), ("INCONSISTENT: an observed gradient norm ...", False)):
        bound = Result.from_dict({**flat, "verdict": verdict}).bound
        assert (bound.n_eval_p, bound.n_eval_q, bound.split, bound.step) == (n, n, "held-out", flat["steps"])
        assert bound.certified is certified and bound.one_lipschitz  # L = 1 + 1e-7 here


TINY = [
    "--critic.name", "bjorck-mlp", "--critic.options", "{width: 16}", "--train.steps", "12",
    "--train.eval_every", "12", "--train.batch_size", "64", "--eval.n_eval", "100", "--eval.n_eval_q", "200",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
]  # fmt: skip


class FitCount(pl.Callback):
    def __init__(self) -> None:
        self.fits = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fits += 1


def test_a_track_continues_over_flat_results_of_an_earlier_version(tmp_path: Path) -> None:
    """A track whose finished step folder holds a flat result.json reuses it (no training) and gives
    the same point as from the nested file."""
    out = tmp_path / "trk"
    series = [str(default_snapshots() / "digits_wgan_gp_8_step00100.pt")]
    first = track(None, TINY, checkpoints=series, out=out, quiet=True)
    result_json = out / "runs" / "step_100" / "result.json"
    result_json.write_text(json.dumps(_flat(json.loads(result_json.read_text()))))
    fits = FitCount()
    again = track(resume=out, callbacks=[fits], quiet=True)
    assert fits.fits == 0
    assert again.points == first.points
