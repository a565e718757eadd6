"""Every kind satisfies the contract declared in backend/kinds/base.py, optional members
included, and the kinds docstring names every member a kind may provide."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel

from labdeck.backend import kinds
from labdeck.backend.kinds import kind_config, kind_experiment, kind_exports, kind_names
from labdeck.backend.kinds.base import (
    KindConfig,
    KindExperiment,
    KindExports,
    declared_artifacts,
    declared_metrics,
    declared_views,
    evaluate_run_hook,
    extra_commands_hook,
    preflight_hook,
    primary_metric,
)
from labdeck.backend.kinds.spec import Curve, Metric, Table

OPTIONAL_CONFIG = (
    "PRIMARY_METRIC",
    "METRICS",
    "VIEWS",
    "ARTIFACTS",
    "extra_commands",
    "preflight",
)
OPTIONAL_EXPERIMENT = ("evaluate_run",)


def _arity(fn) -> int:
    return len(inspect.signature(fn).parameters)


@pytest.mark.parametrize("kind", kind_names())
def test_kind_modules_satisfy_the_protocols(kind: str) -> None:
    cfg = kind_config(kind)
    assert issubclass(cfg.Params, BaseModel) and isinstance(cfg.DESCRIPTION, str)
    metric = primary_metric(cfg)
    assert metric is None or isinstance(metric, str)
    assert all(isinstance(m, Metric) for m in declared_metrics(cfg).values())
    assert all(isinstance(v, Curve | Table) for v in declared_views(cfg))
    assert all(isinstance(p, str) for p in declared_artifacts(cfg).values())
    for hook, arity in ((extra_commands_hook(cfg), 2), (preflight_hook(cfg), 2)):
        assert hook is None or _arity(hook) == arity
    exp = kind_experiment(kind)
    assert _arity(exp.run) == 1 and _arity(exp.dry_run) == 1
    evaluate = evaluate_run_hook(exp)
    assert evaluate is None or _arity(evaluate) == 2
    assert all(callable(f) and _arity(f) == 2 for f in kind_exports(kind).values())


def test_hooks_are_found_where_kinds_define_them() -> None:
    assert extra_commands_hook(kind_config("kt")) is not None
    assert evaluate_run_hook(kind_experiment("kt")) is not None
    assert evaluate_run_hook(kind_experiment("smoke")) is None
    assert preflight_hook(kind_config("degradation")) is not None
    assert kind_exports("degradation") and not kind_exports("smoke")


def test_the_contract_is_documented_where_kinds_are_found() -> None:
    doc = kinds.__doc__ or ""
    for name in (*OPTIONAL_CONFIG, *OPTIONAL_EXPERIMENT, "FORMATS", "Params", "DESCRIPTION"):
        assert name in doc, name
    for name in (*OPTIONAL_CONFIG, "Params", "DESCRIPTION"):
        assert name in (KindConfig.__doc__ or ""), name
    assert "evaluate_run" in (KindExperiment.__doc__ or "")
    assert "FORMATS" in (KindExports.__doc__ or "") or hasattr(KindExports, "FORMATS")
