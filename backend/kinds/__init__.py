"""Experiment kinds, discovered from the packages in this folder.

A kind is a package `backend/kinds/<name>/` with:
- `config.py`: `Params` (a pydantic model, one field per parameter with a type, a
  default, bounds and a description), `DESCRIPTION` (one line) and
  `PRIMARY_METRIC` (the metric the dashboard shows in its runs table). It must
  not import torch: validating a preset or listing parameters stays instant.
- `experiment.py`: `run(ctx) -> dict[str, float]` (final metrics) and
  `dry_run(params) -> DryRun`.
- optionally `exports.py`: `FORMATS = {name: fn(run, out_dir) -> Path}` for
  kind-specific export formats.

Adding a folder is all it takes: the command line and the dashboard find it.
Kinds kept outside this package (a lab's own) are found through
`LABDECK_KIND_PATH`, a list of folders (os.pathsep-separated) holding such packages.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from functools import cache
from types import ModuleType

from ..errors import UserError

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
def kind_config(kind: str) -> ModuleType:
    _check(kind)
    return importlib.import_module(f"{__name__}.{kind}.config")


@cache
def kind_experiment(kind: str) -> ModuleType:
    _check(kind)
    return importlib.import_module(f"{__name__}.{kind}.experiment")


def kind_exports(kind: str) -> dict:
    _check(kind)
    try:
        mod = importlib.import_module(f"{__name__}.{kind}.exports")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{kind}.exports":
            return {}
        raise
    return dict(getattr(mod, "FORMATS", {}))
