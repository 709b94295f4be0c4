"""The result of one estimate: every number labelled with what it is, written atomically.

* ``estimate``: held-out mean difference E_P f - E_Q f of the trained critic (uncertified on its own);
* ``lipschitz_certificate``: L >= Lip(f), certified from the weights used;
* ``lower_bound = estimate / L``: a lower bound on W1 (up to sampling error, see ``ci``);
* ``certified``: L <= 1 + 1e-3, i.e. the raw estimate is itself a bound;
* ``exact_w1``: a closed form (toys) or ``None``;
* ``empirical_ot_w1``: exact OT between finite samples, an upper reference biased upwards, with
  ``empirical_ot_floor`` (P against a disjoint sample of P) beside it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

__all__ = ["Result", "atomic_write_text", "domain_text", "CERTIFIED_TOLERANCE"]

CERTIFIED_TOLERANCE = 1e-3  # certificate <= 1 + this: the raw estimate is itself a bound


def atomic_write_text(path: os.PathLike | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader sees the old file or the complete new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def domain_text(shape: Any, domain: Any) -> str:
    """The units line of every report: sample shape, value range, and the distance used."""
    return f"shape {tuple(shape)}, range {domain if domain else 'unbounded'}, L2 distance on the flattened samples"


@dataclass
class Result:
    """One estimate of W1(P, Q). Distances are Euclidean on the flattened samples, in ``domain``."""

    estimate: float
    lipschitz_certificate: float
    lower_bound: float
    stderr: float
    ci95: list[float]
    ci: dict[str, Any]
    certified: bool
    verdict: str
    exact_w1: Optional[float]
    exact_w1_method: Optional[str]
    empirical_ot_w1: Optional[float]
    empirical_ot_floor: Optional[float]
    empirical_ot_n: Optional[int]
    empirical_lipschitz: Optional[float]
    certificate_layers: list[dict[str, Any]]
    n_eval: int
    steps: int
    seconds: float
    device: str
    critic: str
    loss: str
    p: str
    q: str
    shape: list[int]
    domain: Optional[list[float]]
    versions: dict[str, str]
    curve: list[dict[str, float]] = field(default_factory=list)
    empirical_ot_floor_n: Optional[int] = None
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    def save(self, path: os.PathLike | str) -> Path:
        """Write the result as JSON atomically; returns the path."""
        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: os.PathLike | str) -> "Result":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the table printed at the end of a run."""
        conf = self.ci.get("confidence", 0.95)
        lo, hi = self.ci.get("lower_bound_lo"), self.ci.get("lower_bound_hi")
        bound_label = "W1 lower bound (certified)" if self.certified else "estimate / certificate (a bound, loose)"
        rows = [
            ("P", self.p),
            ("Q", self.q),
            ("domain", domain_text(self.shape, self.domain)),
            ("critic", f"{self.critic} ({self.loss} loss, {self.steps} steps, {self.seconds:.1f} s on {self.device})"),
            (bound_label, f"{self.lower_bound:.4f}   {100 * conf:.0f}% CI [{lo:.4f}, {hi:.4f}] ({self.ci.get('method')}, n={self.n_eval})"),
        ]
        if self.certified and lo is not None:
            # the point value is an estimate of E_P f - E_Q f (<= W1); it lies above W1 about half
            # the time when the critic is near optimal, so the guaranteed statement is the CI's end
            one_sided = 100 * (1 - (1 - conf) / 2)
            rows.append(
                ("W1 at least", f"{lo:.4f} with {one_sided:.1f}% confidence (lower end of the CI; the value above is an estimate)")
            )
        rows += [
            ("held-out E_P f - E_Q f", f"{self.estimate:.4f} ± {self.stderr:.4f} (stderr){'' if self.certified else '  [NOT a bound: critic not certified 1-Lipschitz]'}"),
            ("Lipschitz certificate", f"{self.lipschitz_certificate:.6f} (certified upper bound on Lip(f))"),
        ]
        if self.empirical_lipschitz is not None:
            rows.append(("largest gradient norm seen", f"{self.empirical_lipschitz:.4f} (empirical lower estimate of Lip(f))"))
        if self.exact_w1 is not None:
            rows.append(("exact W1", f"{self.exact_w1:.4f} ({self.exact_w1_method})"))
        if self.empirical_ot_w1 is not None:
            rows.append(
                (
                    "empirical OT (upper reference)",
                    f"{self.empirical_ot_w1:.4f} (exact OT on {self.empirical_ot_n} vs {self.empirical_ot_n} samples; biased upwards)",
                )
            )
        if self.empirical_ot_floor is not None:
            on = f" on {self.empirical_ot_floor_n} vs {self.empirical_ot_floor_n} samples" if self.empirical_ot_floor_n else ""
            rows.append(("empirical OT floor (P vs P)", f"{self.empirical_ot_floor:.4f} (same-distribution sampling bias{on})"))
        rows.append(("verdict", self.verdict))
        return rows

    def format_table(self) -> str:
        rows = self.summary_rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
