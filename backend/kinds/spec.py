"""What a kind declares about itself in `config.py`, beyond its parameters (torch-free).

`compare`, `ls`, `plot` and the dashboard know nothing about any kind's code; they read
these declarations:

- `METRICS: dict[str, Metric]`: each metric's role. *Outcomes* are what a reproduction
  must reproduce (compared PASS/FAIL at their tolerance); *measurements* (throughput,
  wall time, memory) are shown with their ratio and never FAIL. Keys may be fnmatch
  patterns (`"*_seconds"`); a metric matching no key is an outcome at `DEFAULT_TOL`.
- `VIEWS: list[Curve | Table]`: what the Monitor and Compare screens draw for the kind,
  so a new kind gets a useful dashboard without touching `tui/`.
- `STYLING: Styling`: which parameter colours the curves of an overlay and which picks
  their marker and line style, so `plot RUN…`, `plot GROUP` and the Compare screen draw
  the same picture in any argument order.
- Parameters naming an input carry `Input(...)` in their `Annotated` type. Validation
  checks that the input exists (exit 2 and no run directory when it does not),
  config.json records its content hash, and `reproduce` refuses when it changed. Such
  a parameter may also be a run reference, `run:<id>` or `run:<id>/<artifact>`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .base import KindConfig

# Outcomes of CPU-deterministic kinds reproduce exactly; this leaves room for
# float summation order only. Kinds with noisier outcomes declare their own.
DEFAULT_TOL = 1e-6


@dataclass(frozen=True)
class Metric:
    """How a metric is compared and shown."""

    role: Literal["outcome", "measurement"] = "outcome"
    tol: float = DEFAULT_TOL
    label: str = ""
    unit: str = ""
    higher_is_better: bool | None = None


MEASUREMENT = Metric(role="measurement")


@dataclass(frozen=True)
class Curve:
    """A plot of metric events: one line per metric name (fnmatch patterns allowed),
    over `x`, which is a field of the metric event (`step`, `epoch`, `level`) or `t`."""

    title: str
    metrics: tuple[str, ...]
    x: str = "step"
    group_by: str | None = None
    # metrics holding the lower and upper ends of an interval around the (single) curve
    band: tuple[str, str] | None = None
    # the values are shares (0..1), drawn as percent
    percent: bool = False


@dataclass(frozen=True)
class Styling:
    """The styling axes of an overlay: `color` names the parameter whose values get
    colours, `marker` the one whose values get markers and line styles. Values are
    ordered by the parameter's default first, then sorted, never by argument order.
    `caption`: parameters that say how the numbers were obtained (e.g. a counting
    convention), shown in figure titles."""

    color: str | None = None
    marker: str | None = None
    caption: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A table of events of one type (`checkpoint`, `metric`, `trajectory`, ...), one row
    per event, with the named fields as columns (dotted names reach into dicts)."""

    title: str
    event: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Input:
    """Marks a parameter that names an input file or folder (see the module docstring).

    `what`: "file", "dir" or "any". `hub_ok`: a value that is not an existing path may be
    a model hub id (or an embedded alias) and is then not required to exist locally.
    `builtin`: values that name something shipped with labdeck and are not checked.
    Empty values ("" or None) mean "not given" and are not checked.
    """

    what: Literal["file", "dir", "any"] = "file"
    hub_ok: bool = False
    run_artifacts: tuple[str, ...] = field(default_factory=tuple)
    # Values naming something shipped with labdeck (a prompt set, a drawn image): never paths.
    builtin: tuple[str, ...] = field(default_factory=tuple)


def metric_spec(config: KindConfig | ModuleType, name: str) -> Metric:
    """The declaration that governs metric `name` in a kind's config module."""
    from .base import declared_metrics

    declared = declared_metrics(config)
    if name in declared:
        return declared[name]
    for pattern, spec in declared.items():
        if fnmatch.fnmatchcase(name, pattern):
            return spec
    return Metric()


def views(config: KindConfig | ModuleType) -> list[Curve | Table]:
    from .base import declared_views

    return declared_views(config)


def added_params(config: ModuleType) -> dict[str, Any]:
    """The kind's `ADDED_PARAMS`: parameters it gained, with the value that ran before."""
    return dict(getattr(config, "ADDED_PARAMS", {}) or {})


def with_added_params(config: ModuleType, params: dict[str, Any]) -> dict[str, Any]:
    """A recorded parameter set as the kind's code reads it today.

    When a kind gains a parameter, its default is today's behaviour, but a run recorded
    before it existed ran with the earlier behaviour. The kind declares that earlier
    value in `ADDED_PARAMS` (name -> value), and every reader of an old config.json
    (resume, reproduce, eval) fills it in, so an old run continues and reproduces as
    it began instead of silently switching to the new default.
    """
    missing = {k: v for k, v in added_params(config).items() if k not in params}
    return {**params, **missing} if missing else params


def styling(config: ModuleType | Any) -> Styling:
    return getattr(config, "STYLING", None) or Styling()
