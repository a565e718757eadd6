"""Side-by-side comparison of runs: final metrics within a tolerance, and parameter diffs.

Shared by `labdeck compare` and the dashboard's Compare screen so both always agree
on what PASS means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .kinds.spec import DEFAULT_TOL, Metric, metric_spec
from .presets import flatten
from .runs import Run, find_reproductions, resolve_run

PENDING_STATUSES = ("running", "queued")


@dataclass
class MetricRow:
    """One final metric of two runs.

    `verdict`: "PASS"/"FAIL" for outcomes (|diff| <= tol), "info" for measurements (their
    `ratio` b/a is shown instead), "pending" while either run has not finished.
    """

    name: str
    a: float | None
    b: float | None
    diff: float | None
    verdict: str
    role: str = "outcome"
    tol: float = DEFAULT_TOL
    ratio: float | None = None

    @property
    def passed(self) -> bool:
        return self.verdict in ("PASS", "info")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "diff": self.diff,
            "ratio": self.ratio,
            "role": self.role,
            "tol": self.tol,
            "verdict": self.verdict,
        }


@dataclass
class ParamRow:
    key: str
    a: Any
    b: Any


@dataclass
class Comparison:
    a: Run
    b: Run
    tol: float | None
    metrics: list[MetricRow]
    params: list[ParamRow]
    pending: list[str] = field(default_factory=list)  # ids of runs not finished yet

    @property
    def outcomes(self) -> list[MetricRow]:
        return [m for m in self.metrics if m.role == "outcome"]

    @property
    def all_passed(self) -> bool:
        return not self.pending and bool(self.outcomes) and all(m.passed for m in self.outcomes)

    @property
    def verdict(self) -> str:
        """PASS, FAIL or pending for the whole comparison."""
        if self.pending:
            return "pending"
        return "PASS" if self.all_passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.id,
            "b": self.b.id,
            "tol": self.tol,
            "verdict": self.verdict,
            "pending": self.pending,
            "metrics": [m.as_dict() for m in self.metrics],
            "params": [{"key": p.key, "a": p.a, "b": p.b} for p in self.params],
        }


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def final_metrics(run: Run) -> dict[str, Any]:
    return dict(run.summary().get("final_metrics", {}))


def metric_roles(kind: str | None) -> Callable[[str], Metric]:
    """The kind's declaration for each metric name (see kinds/spec.py); unknown kinds get
    the default (an outcome at DEFAULT_TOL), never an import of model code."""
    config = None
    if kind:
        try:
            from .kinds import kind_config

            config = kind_config(kind)
        except Exception:
            config = None
    if config is None:
        return lambda _name: Metric()
    return lambda name: metric_spec(config, name)


def metric_rows(
    a: dict[str, Any],
    b: dict[str, Any],
    tol: float | None = None,
    spec: Callable[[str], Metric] | None = None,
    pending: bool = False,
) -> list[MetricRow]:
    """`tol` (when given) overrides every outcome's declared tolerance."""
    spec = spec or (lambda _name: Metric())
    rows = []
    for name in list(a) + [n for n in b if n not in a]:
        m = spec(name)
        limit = m.tol if tol is None else tol
        va, vb = _num(a.get(name)), _num(b.get(name))
        diff = ratio = None
        if va is not None and vb is not None:
            diff = 0.0 if math.isnan(va) and math.isnan(vb) else abs(vb - va)
            ratio = vb / va if va not in (0.0,) and not math.isnan(va) else None
        if pending:
            verdict = "pending"
        elif m.role == "measurement":
            verdict = "info"
        elif diff is None or math.isnan(diff):
            verdict = "FAIL"
        else:
            verdict = "PASS" if diff <= limit else "FAIL"
        rows.append(MetricRow(name, va, vb, diff, verdict, m.role, limit, ratio))
    return rows


def param_rows(a: dict[str, Any], b: dict[str, Any]) -> list[ParamRow]:
    fa, fb = flatten(a), flatten(b)
    missing = object()
    out = []
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            out.append(ParamRow(key, None if va is missing else va, None if vb is missing else vb))
    return out


def compared_params(run: Run) -> dict[str, Any]:
    """The kind's parameters plus what of the launcher changes the numbers: the
    data-parallel world (processes per node, nodes) splits batches and sums gradients
    in another order, so two runs that differ there are not the same experiment."""
    launcher = run.config.get("launcher") or {}
    world = {"processes": int(launcher.get("processes") or 1)}
    if int(launcher.get("nodes") or 1) != 1:
        world["nodes"] = int(launcher["nodes"])
    return {**run.config.get("params", {}), "launcher": world}


def compare_runs(a: Run, b: Run, tol: float | None = None) -> Comparison:
    """`tol=None`: each outcome at the tolerance its kind declares."""
    from .runs import effective_status

    pending = [r.id for r in (a, b) if effective_status(r.state()) in PENDING_STATUSES]
    return Comparison(
        a=a,
        b=b,
        tol=tol,
        metrics=metric_rows(
            final_metrics(a),
            final_metrics(b),
            tol,
            metric_roles(a.config.get("kind")),
            pending=bool(pending),
        ),
        params=param_rows(compared_params(a), compared_params(b)),
        pending=pending,
    )


def counterpart(results: Path, run: Run) -> Run:
    """For `compare RUN` alone: a reproduction's original, or an original's newest reproduction."""
    original_id = run.state().get("reproduction_of")
    if original_id:
        return resolve_run(results, original_id)
    repros = find_reproductions(results, run)
    if not repros:
        raise UserError(
            f"{run.id}: no reproduction found; run `labdeck reproduce {run.short_id}` "
            "or name a second run to compare with"
        )
    return repros[-1]
