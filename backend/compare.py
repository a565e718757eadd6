"""Side-by-side comparison of runs: final metrics within a tolerance, and parameter diffs.

Shared by `labdeck compare` and the dashboard's Compare screen so both always agree
on what PASS means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .presets import flatten
from .runs import Run, find_reproductions, resolve_run


@dataclass
class MetricRow:
    name: str
    a: float | None
    b: float | None
    diff: float | None
    passed: bool


@dataclass
class ParamRow:
    key: str
    a: Any
    b: Any


@dataclass
class Comparison:
    a: Run
    b: Run
    tol: float
    metrics: list[MetricRow]
    params: list[ParamRow]

    @property
    def all_passed(self) -> bool:
        return bool(self.metrics) and all(m.passed for m in self.metrics)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def final_metrics(run: Run) -> dict[str, Any]:
    return dict(run.summary().get("final_metrics", {}))


def metric_rows(a: dict[str, Any], b: dict[str, Any], tol: float) -> list[MetricRow]:
    rows = []
    for name in list(a) + [n for n in b if n not in a]:
        va, vb = _num(a.get(name)), _num(b.get(name))
        if va is None or vb is None:
            rows.append(MetricRow(name, va, vb, None, False))
            continue
        if math.isnan(va) and math.isnan(vb):
            rows.append(MetricRow(name, va, vb, 0.0, True))
            continue
        diff = abs(vb - va)
        rows.append(MetricRow(name, va, vb, diff, diff <= tol))
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


def compare_runs(a: Run, b: Run, tol: float = 1e-6) -> Comparison:
    return Comparison(
        a=a,
        b=b,
        tol=tol,
        metrics=metric_rows(final_metrics(a), final_metrics(b), tol),
        params=param_rows(a.config.get("params", {}), b.config.get("params", {})),
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
