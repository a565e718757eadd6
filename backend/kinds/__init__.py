"""Experiment kinds, discovered from the packages in this folder.

A kind is a package `backend/kinds/<name>/`; the contract is declared as Protocols in
`backend/kinds/base.py` (read it there, with every optional member and its default):
- `config.py` (`KindConfig`, no torch import: validating a preset or listing
  parameters stays instant): `Params` (a pydantic model, one field per parameter with
  a type, a default, bounds and a description), `DESCRIPTION` (one line); optionally
  `PRIMARY_METRIC` (the runs table's metric), `METRICS`, `VIEWS` (metric roles and
  views, spec.py), `ARTIFACTS` (what `run:<id>/<name>` may reference),
  `extra_commands(run_id, params)` (more config.json commands) and
  `preflight(params, where)` (machine and file checks at validation).
- `experiment.py` (`KindExperiment`): `run(ctx) -> dict[str, float]` (final metrics)
  and `dry_run(params) -> DryRun`; optionally `evaluate_run(run, params)` (`labdeck eval`).
- optionally `exports.py` (`KindExports`): `FORMATS = {name: fn(run, out_dir) -> Path}`
  for kind-specific export formats.

Optional members are read through base.py's accessors (`primary_metric(cfg)`,
`preflight_hook(cfg)`, ...), never with a bare getattr at the call site.

Adding a folder is all it takes: the command line and the dashboard find it.
Kinds kept outside this package (a lab's own) are found through
`LABDECK_KIND_PATH`, a list of folders (os.pathsep-separated) holding such packages.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .base import ExportFormat, KindConfig, KindExperiment

for _extra in filter(None, os.environ.get("LABDECK_KIND_PATH", "").split(os.pathsep)):
    if _extra not in __path__:
        __path__.append(_extra)


@cache
def kind_names() -> tuple[str, ...]:
    return tuple(
        sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and m.name != "common")
    )


def _check(kind: str) -> None:
    if kind not in kind_names():
        raise UserError(f"unknown kind {kind!r}; expected one of: {', '.join(kind_names())}")


@cache
def kind_config(kind: str) -> KindConfig:
    from .base import as_config

    _check(kind)
    return as_config(importlib.import_module(f"{__name__}.{kind}.config"))


@cache
def kind_experiment(kind: str) -> KindExperiment:
    from .base import as_experiment

    _check(kind)
    return as_experiment(importlib.import_module(f"{__name__}.{kind}.experiment"))


def kind_exports(kind: str) -> dict[str, ExportFormat]:
    from .base import export_formats

    _check(kind)
    try:
        mod = importlib.import_module(f"{__name__}.{kind}.exports")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{kind}.exports":
            return {}
        raise
    return export_formats(mod)
