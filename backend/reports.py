"""Exports of records and PNG plots of a run's event stream, for any kind.

Both read only the run directory, so they work on a finished run, a running one,
or one copied from another machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .axes import label_x
from .errors import UserError
from .events import EventReader
from .kinds import kind_exports
from .presets import flatten
from .runs import ARTIFACTS, Run

if TYPE_CHECKING:
    from .groups import Group

BASE_FORMATS = ("json", "csv", "parquet")


def export_formats(kind: str) -> list[str]:
    return [*BASE_FORMATS, *kind_exports(kind)]


def records_frame(run: Run):  # -> pandas.DataFrame (imported lazily: pandas is slow to import)
    import pandas as pd

    records = list(EventReader(run.records_path).read_new())
    return pd.DataFrame.from_records(records)


def export(run: Run, fmt: str, out: Path | None = None) -> Path:
    """Records as json/csv/parquet, or a kind's own format (e.g. the seed's single JSON)."""
    extra = kind_exports(run.kind)
    if fmt in extra:
        return extra[fmt](run, out or run.path / ARTIFACTS)
    if fmt not in BASE_FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of: {', '.join(export_formats(run.kind))}")
    df = records_frame(run)
    if df.empty:
        raise UserError(f"{run.records_path}: no records to export yet")
    dest = out or run.path / ARTIFACTS / f"records.{fmt}"
    if dest.is_dir():
        dest = dest / f"records.{fmt}"
    return write_frame(df, dest, fmt)


def export_group(group: Group, fmt: str, out_dir: Path) -> Path:
    """Every member's records in one table, each row with its run id and grid coordinates
    (`grid.<axis>` columns), so a whole grid loads into one data frame."""
    import pandas as pd

    frames = []
    for run in group.members:
        df = records_frame(run)
        if df.empty:
            continue
        columns = {"run_id": run.id, **{f"grid.{k}": v for k, v in group.coords(run).items()}}
        for i, (name, value) in enumerate(columns.items()):
            df.insert(i, name, [value] * len(df))
        frames.append(df)
    if not frames:
        raise UserError(f"group {group.id}: no records to export yet")
    return write_frame(
        pd.concat(frames, ignore_index=True), out_dir / f"{group.id}_records.{fmt}", fmt
    )


def write_frame(df, dest: Path, fmt: str) -> Path:
    """A records table as json, csv or parquet at `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        df.to_json(dest, orient="records", indent=2, force_ascii=False)
        return dest
    # Nested values (dicts, lists) have no column type in CSV/Parquet: keep them as JSON text.
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, dict | list)).any():
            df[col] = df[col].map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
            )
    if fmt == "csv":
        df.to_csv(dest, index=False)
    else:
        df.to_parquet(dest, index=False)
    return dest


# --------------------------------------------------------------------------- plots

X_KEYS = ("step", "epoch", "level")


def metric_series(events: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """metric name → group → [(x, value)], x from step/epoch/level or the event's order."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    counters: dict[str, int] = defaultdict(int)
    for e in events:
        if e.get("type") != "metric" or not isinstance(e.get("value"), int | float):
            continue
        name = str(e.get("name"))
        x = next((e[k] for k in X_KEYS if isinstance(e.get(k), int | float)), None)
        if x is None:
            x = counters[name]
            counters[name] += 1
        out[name][str(e.get("group", ""))].append((float(x), float(e["value"])))
    return out


def trajectory_series(events: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Every numeric field of `trajectory` events (nested dicts dotted) over epoch."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i, e in enumerate(e for e in events if e.get("type") == "trajectory"):
        x = e.get("epoch", i)
        for k, v in flatten(
            {k: v for k, v in e.items() if k not in ("t", "seq", "type", "epoch")}
        ).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k].append((float(x), float(v)))
    return out


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, max(1, n))
    return (n + cols - 1) // cols, cols


def curve_view(kind: str | None, name: str) -> Any:
    """The kind's Curve view that draws metric `name`, if any (for its band and unit)."""
    import fnmatch

    from .kinds import kind_config
    from .kinds.spec import Curve, views

    if not kind:
        return None
    try:
        declared = views(kind_config(kind))
    except UserError:
        return None
    return next(
        (
            v
            for v in declared
            if isinstance(v, Curve) and any(fnmatch.fnmatchcase(name, m) for m in v.metrics)
        ),
        None,
    )


def _draw(
    series_by_panel: dict[str, dict[str, list[tuple[float, float]]]],
    title: str,
    dest: Path,
    xlabel: str,
    kind: str | None = None,
) -> Path:
    """One panel per metric. A metric the kind draws as a share is drawn in percent, and
    the metrics of its interval become a band in its panel rather than panels of their own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = {name: curve_view(kind, name) for name in series_by_panel}
    bands = {b for v in views.values() if v is not None and v.band for b in v.band}
    panels = {k: v for k, v in series_by_panel.items() if k not in bands}
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, groups) in zip(axes.flat, panels.items(), strict=False):
        view = views[name]
        scale = 100.0 if view is not None and view.percent else 1.0
        for group, pts in sorted(groups.items()):
            band = None
            if view is not None and view.band:
                lo, hi = (series_by_panel.get(b, {}).get(group, []) for b in view.band)
                band = (lo, hi) if lo and hi else None
            style = {"marker": "o", "label": group or None}
            draw_series(ax, pts, style, band, scale)
        ax.set_title(f"{name} (%)" if scale != 1.0 else name, fontsize=10)
        label_x(ax, xlabel)
        ax.grid(alpha=0.3)
        if any(groups):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return dest


def split_measurements(kind: str, metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results, measurements) by the kind's METRICS roles: a throughput or a memory
    figure never shares a picture with what the experiment found."""
    from .kinds import kind_config
    from .kinds.spec import metric_spec

    try:
        config = kind_config(kind)
    except UserError:  # a run of a kind this version does not know: all results
        return metrics, {}
    results, measurements = {}, {}
    for name, groups in metrics.items():
        role = metric_spec(config, name).role
        (measurements if role == "measurement" else results)[name] = groups
    return results, measurements


def plot(run: Run, out_dir: Path | None = None) -> list[Path]:
    """PNG curves of every metric (one panel per metric, a line per group) and of trajectories."""
    events = EventReader(run.events_path).read_new()
    out_dir = out_dir or run.path / ARTIFACTS
    written: list[Path] = []
    metrics = metric_series(events)
    xs = {k for e in events if e.get("type") == "metric" for k in X_KEYS if k in e}
    results, measurements = split_measurements(run.kind, metrics)
    for part, name, what in (
        (results, "metrics", "metrics"),
        (measurements, "measurements", "measurements (throughput, time, memory)"),
    ):
        if part:
            written.append(
                _draw(
                    part,
                    figure_title(f"{run.id}: {what}", [run]),
                    out_dir / f"{name}.png",
                    "/".join(sorted(xs)) or "order",
                    run.kind,
                )
            )
    traj = trajectory_series(events)
    varying = {k: {"": v} for k, v in traj.items() if len({p[1] for p in v}) > 1}
    if varying:
        written.append(_draw(varying, f"{run.id}: trajectory", out_dir / "trajectory.png", "epoch"))
    if not written:
        raise UserError(f"{run.events_path}: no metric or trajectory events to plot yet")
    return written


# --------------------------------------------------------------------------- several runs

COLORS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", ":", "--", "-.")


def differing_params(runs: list[Run], first: tuple[str, ...] = ()) -> list[str]:
    """Parameters whose values differ between the runs: `first` (a kind's STYLE_KEYS) in
    its order, then the others alphabetically."""
    flats = [flatten(r.config.get("params", {})) for r in runs]
    keys = sorted({k for f in flats for k in f})
    differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    # a parameter only some runs have (written by another version of the kind) says less
    # about what the runs compare than one they all set differently
    shared = [k for k in differ if all(k in f for f in flats)]
    ordered = [k for k in first if k in differ]
    ordered += [k for k in shared if k not in ordered]
    return ordered + [k for k in differ if k not in ordered]


_NO_DEFAULT = object()


def _kind_of(runs: list[Run]) -> str | None:
    kinds = {r.kind for r in runs}
    return kinds.pop() if len(kinds) == 1 else None


def kind_styling(kind: str | None) -> Any:
    from .kinds import kind_config
    from .kinds.spec import Styling, styling

    return styling(kind_config(kind)) if kind else Styling()


def param_default(kind: str | None, key: str) -> Any:
    """The kind's default for parameter `key` (a value of it sorts first), if it has one."""
    from .kinds import kind_config

    if not kind:
        return _NO_DEFAULT
    params = getattr(kind_config(kind), "Params", None)
    field = getattr(params, "model_fields", {}).get(key)
    if field is None:
        return _NO_DEFAULT
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def style_slots_of(
    items: list[dict[str, Any]],
    color_key: str | None,
    marker_key: str | None,
    defaults: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """(colour slot, marker slot) per item (a run's parameters or a member's grid
    coordinates): the values of `color_key` numbered in a fixed order — the default
    first, then sorted — and those of `marker_key` likewise. The one styling rule of
    `plot RUN…`, `plot GROUP` and the Compare screen, so an item's style depends on its
    values only, never on the order the items came in."""
    defaults = defaults or {}

    def order(key: str | None) -> list[str]:
        if key is None:
            return []
        values = sorted({_canon(it.get(key)) for it in items})
        default = defaults.get(key, _NO_DEFAULT)
        if default is not _NO_DEFAULT and _canon(default) in values:
            values.remove(_canon(default))
            values.insert(0, _canon(default))
        return values

    colors, markers = order(color_key), order(marker_key)
    return [
        (
            colors.index(_canon(it.get(color_key))) if color_key else 0,
            markers.index(_canon(it.get(marker_key))) if marker_key else 0,
        )
        for it in items
    ]


def style_slots(runs: list[Run], keys: list[str]) -> list[tuple[int, int, str]]:
    """(colour slot, marker slot, label) per run. The kind's STYLING picks the colour and
    marker parameters (else the first two of `keys`); labels name the `keys` that differ.
    Shared by the PNG overlay and the dashboard's Compare screen (seed 000's four
    curves: reflection by colour, persona by marker and line)."""
    kind = _kind_of(runs)
    declared = kind_styling(kind)
    color = declared.color if declared.color in keys else None
    marker = declared.marker if declared.marker in keys else None
    if color is None and marker is None:  # no declared axis differs: the first keys style
        color = keys[0] if keys else None
        marker = keys[1] if len(keys) > 1 else None
    flats = [flatten(r.config.get("params", {})) for r in runs]
    defaults = {k: param_default(kind, k) for k in (color, marker) if k}
    slots = style_slots_of(flats, color, marker, defaults)
    if color is None and marker is None:  # nothing declared differs: one colour per run
        slots = [(i, 0) for i in range(len(runs))]
    return [
        (c, m, ", ".join(f"{k}={flats[i].get(k)}" for k in keys[:3]) or run.id)
        for i, (run, (c, m)) in enumerate(zip(runs, slots, strict=True))
    ]


def style_keys(runs: list[Run]) -> list[str]:
    """The parameters that style an overlay of `runs`: the kind's styling axes first."""
    declared = kind_styling(_kind_of(runs))
    first = tuple(k for k in (declared.color, declared.marker) if k)
    return differing_params(runs, first)


def style_of(color_slot: int, marker_slot: int) -> dict[str, Any]:
    return {
        "color": COLORS[color_slot % len(COLORS)],
        "marker": MARKERS[marker_slot % len(MARKERS)],
        "linestyle": LINESTYLES[marker_slot % len(LINESTYLES)],
    }


def run_styles(runs: list[Run], keys: list[str]) -> list[dict[str, Any]]:
    """One matplotlib style per run (see `style_slots`)."""
    return [{**style_of(c, m), "label": label} for c, m, label in style_slots(runs, keys)]


def caption(runs: list[Run]) -> str:
    """The kind's caption parameters (how the numbers were counted) for a figure title;
    nothing for a kind this installation does not know (a run made by another version)."""
    try:
        keys = kind_styling(_kind_of(runs)).caption
    except UserError:
        return ""
    parts = []
    for key in keys:
        values = sorted({_canon(r.config.get("params", {}).get(key)) for r in runs})
        shown = [json.loads(v) for v in values if v != "null"]
        if shown:
            parts.append(f"{key}={'/'.join(map(str, shown))}")
    return ", ".join(parts)


def _last_per_x(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A resumed run repeats the events of the steps it redid; the latest value counts."""
    return sorted(dict(points).items())


def _curve_metrics(runs: list[Run]) -> list[tuple[Any, list[str]]]:
    """(Curve, metric names) to draw: the kind's Curve views when all runs share a kind,
    else one figure per metric every run has."""
    from .kinds import kind_config
    from .kinds.spec import Curve, views

    series = [metric_series(EventReader(r.events_path).read_new()) for r in runs]
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    kind = _kind_of(runs)
    figures: list[tuple[Any, list[str]]] = []
    if kind:
        import fnmatch

        for view in views(kind_config(kind)):
            if isinstance(view, Curve):
                names = [m for m in common if any(fnmatch.fnmatchcase(m, p) for p in view.metrics)]
                if names:
                    figures.append((view, names))
    return figures or [(Curve(name, (name,)), [name]) for name in common]


def draw_series(
    ax: Any,
    pts: list[tuple[float, float]],
    style: dict[str, Any],
    band: tuple[list[tuple[float, float]], list[tuple[float, float]]] | None = None,
    scale: float = 1.0,
) -> None:
    """One curve, and its interval as a band of the same colour where both ends exist."""
    pts = _last_per_x(pts)
    ax.plot([p[0] for p in pts], [scale * p[1] for p in pts], ms=5, **style)
    if band:
        lo, hi = dict(_last_per_x(band[0])), dict(_last_per_x(band[1]))
        xs = [x for x, _ in pts if x in lo and x in hi]
        if xs:
            ax.fill_between(
                xs,
                [scale * lo[x] for x in xs],
                [scale * hi[x] for x in xs],
                color=style.get("color"),
                alpha=0.12,
                linewidth=0,
            )


def figure_title(title: str, runs: list[Run]) -> str:
    note = caption(runs)
    return f"{title}\n{note}" if note else title


def plot_runs(runs: list[Run], out_dir: Path) -> list[Path]:
    """Several runs overlaid, one PNG per curve view, styled by the kind's styling axes
    (style_slots), intervals as bands, shares in percent; measurements never share a
    figure with results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # drawn (and listed in the legend) in style order, so the picture is the same for
    # any order of the arguments
    styles = run_styles(runs, style_keys(runs))
    order = sorted(
        range(len(runs)),
        key=lambda i: (
            COLORS.index(styles[i]["color"]),
            MARKERS.index(styles[i]["marker"]),
            styles[i]["label"],
        ),
    )
    runs, styles = [runs[i] for i in order], [styles[i] for i in order]
    series = [metric_series(EventReader(r.events_path).read_new()) for r in runs]
    figures = _curve_metrics(runs)
    if not figures:
        raise UserError("these runs have no metric in common to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for view, names in figures:
        scale = 100.0 if view.percent else 1.0
        fig, axes = plt.subplots(1, len(names), figsize=(7 * len(names), 4.8), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=True):
            for run_series, style in zip(series, styles, strict=True):
                for group, pts in sorted(run_series.get(name, {}).items()):
                    label = style["label"] + (f" [{group}]" if group else "")
                    band = None
                    if view.band:
                        lo, hi = (run_series.get(b, {}).get(group, []) for b in view.band)
                        band = (lo, hi) if lo and hi else None
                    draw_series(ax, pts, {**style, "label": label}, band, scale)
            ax.set_title(name, fontsize=10)
            label_x(ax, view.x)
            if view.percent:
                ax.set_ylabel(f"{name} (%)", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
        fig.suptitle(figure_title(view.title, runs), fontsize=11)
        fig.tight_layout()
        slug = "".join(ch if ch.isalnum() else "_" for ch in view.title.lower()).strip("_")
        dest = out_dir / f"compare_{slug}.png"
        fig.savefig(dest, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(dest)
    return written


# --------------------------------------------------------------------------- group overlay
# (styles: COLORS, MARKERS and LINESTYLES above)


def group_styles(
    members_coords: list[dict[str, Any]],
    color: str | None,
    style: str | None,
    kind: str | None = None,
) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Matplotlib styles per member: colour from one grid axis, line style and marker from
    another (style_slots_of: values in a fixed order, whatever the members' order).
    Defaults: the kind's styling axes when they are grid axes, else the first axis with
    more than one value colours and the next one styles."""
    axes: dict[str, list[Any]] = {}
    for coords in members_coords:
        for k, v in coords.items():
            if v not in axes.setdefault(k, []):
                axes[k].append(v)
    varying = [k for k, vs in axes.items() if len(vs) > 1] or list(axes)
    for name, given in (("color", color), ("style", style)):
        if given is not None and given not in axes:
            raise UserError(
                f"--{name} {given}: not a grid axis; expected one of: {', '.join(axes) or '(none)'}"
            )
    declared = kind_styling(kind)
    if color is None and declared.color in varying and declared.color != style:
        color = declared.color
    if style is None and declared.marker in varying and declared.marker != color:
        style = declared.marker
    color = color or next((k for k in varying if k != style), None)
    style = style or next((k for k in varying if k != color), None)
    defaults = {k: param_default(kind, k) for k in (color, style) if k}
    slots = style_slots_of(members_coords, color, style, defaults)
    return color, style, [style_of(c, m) for c, m in slots]


def group_metric(group: Any, metric: str | None) -> tuple[str, list[list[tuple[float, float]]]]:
    """The metric to overlay (default: the kind's primary, else the first one any member
    reports) and each member's points, in member order."""
    per_member = [metric_series(EventReader(r.events_path).read_new()) for r in group.members]
    names = [n for series in per_member for n in series]
    if not names:
        raise UserError(f"group {group.id}: no metric events to plot yet")
    primary = group.members[0].config.get("primary_metric")
    name = metric or (primary if primary in names else names[0])
    if name not in names:
        raise UserError(
            f"--metric {name}: no member reports it; expected one of: {', '.join(sorted(set(names)))}"
        )
    points = []
    for series in per_member:
        pts = [p for grp in series.get(name, {}).values() for p in grp]
        points.append(sorted(pts))
    return name, points


def plot_group(
    group: Any,
    out_dir: Path,
    metric: str | None = None,
    color: str | None = None,
    style: str | None = None,
) -> Path:
    """One PNG: `metric` over step/epoch/level, a line per member styled by grid axis,
    with the interval band and percent scale the kind's Curve view declares for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = [group.coords(r) for r in group.members]
    color, style, styles = group_styles(coords, color, style, group.kind)
    name, points = group_metric(group, metric)
    view = next((v for v, names in _curve_metrics(group.members) if name in names), None)
    scale = 100.0 if view is not None and view.percent else 1.0
    fig, ax = plt.subplots(figsize=(8, 4.8))
    drawn = sorted(
        zip(group.members, coords, styles, points, strict=True),
        key=lambda m: (COLORS.index(m[2]["color"]), MARKERS.index(m[2]["marker"]), m[0].id),
    )
    for run, c, st, pts in drawn:
        if not pts:
            continue
        label = ", ".join(f"{k}={v}" for k, v in c.items()) or run.short_id
        band = None
        if view is not None and view.band:
            series = metric_series(EventReader(run.events_path).read_new())
            lo, hi = ([p for g in series.get(b, {}).values() for p in g] for b in view.band)
            band = (lo, hi) if lo and hi else None
        draw_series(ax, pts, {**st, "label": label}, band, scale)
    ax.set_title(figure_title(f"group {group.id}: {name}", group.members), fontsize=10)
    label_x(ax, view.x if view is not None else "step / epoch / level")
    ax.set_ylabel(f"{name} (%)" if scale != 1.0 else name, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=f"colour: {color}" + (f", style: {style}" if style else ""))
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{group.id}_{name.replace('/', '_')}.png"
    fig.savefig(dest, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return dest
