"""Exports of records and PNG plots of a run's event stream, for any kind.

Both read only the run directory, so they work on a finished run, a running one,
or one copied from another machine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def _draw(
    series_by_panel: dict[str, dict[str, list[tuple[float, float]]]],
    title: str,
    dest: Path,
    xlabel: str,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = _grid(len(series_by_panel))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, (name, groups) in zip(axes.flat, series_by_panel.items(), strict=False):
        for group, pts in sorted(groups.items()):
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=group or None)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
        if any(groups):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(series_by_panel) :]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def plot(run: Run, out_dir: Path | None = None) -> list[Path]:
    """PNG curves of every metric (one panel per metric, a line per group) and of trajectories."""
    events = EventReader(run.events_path).read_new()
    out_dir = out_dir or run.path / ARTIFACTS
    written: list[Path] = []
    metrics = metric_series(events)
    if metrics:
        xs = {k for e in events if e.get("type") == "metric" for k in X_KEYS if k in e}
        written.append(
            _draw(
                metrics,
                f"{run.id}: metrics",
                out_dir / "metrics.png",
                "/".join(sorted(xs)) or "order",
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


def style_slots(runs: list[Run], keys: list[str]) -> list[tuple[int, int, str]]:
    """(colour slot, marker slot, label) per run: the first differing parameter picks the
    colour, the second the marker and line style; values are numbered in the order the
    runs were given. Shared by the PNG overlay and the dashboard's Compare screen, so
    both draw the same picture (seed 000's four curves: reflection by colour, persona
    by marker and line)."""
    flats = [flatten(r.config.get("params", {})) for r in runs]

    def index(key: str, run_i: int) -> int:
        seen: list[str] = []
        for f in flats:
            v = json.dumps(f.get(key), sort_keys=True)
            if v not in seen:
                seen.append(v)
        return seen.index(json.dumps(flats[run_i].get(key), sort_keys=True))

    return [
        (
            index(keys[0], i) if keys else i,
            index(keys[1], i) if len(keys) > 1 else 0,
            ", ".join(f"{k}={flats[i].get(k)}" for k in keys[:3]) or run.id,
        )
        for i, run in enumerate(runs)
    ]


def style_keys(runs: list[Run]) -> list[str]:
    """The parameters that style an overlay of `runs`: the kind's STYLE_KEYS first."""
    from .kinds import kind_config

    kinds = {r.kind for r in runs}
    first = (
        tuple(getattr(kind_config(next(iter(kinds))), "STYLE_KEYS", ())) if len(kinds) == 1 else ()
    )
    return differing_params(runs, first)


def run_styles(runs: list[Run], keys: list[str]) -> list[dict[str, Any]]:
    """One matplotlib style per run (see `style_slots`)."""
    return [
        {
            "color": COLORS[c % len(COLORS)],
            "marker": MARKERS[m % len(MARKERS)],
            "linestyle": LINESTYLES[m % len(LINESTYLES)],
            "label": label,
        }
        for c, m, label in style_slots(runs, keys)
    ]


def _last_per_x(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A resumed run repeats the events of the steps it redid; the latest value counts."""
    return sorted(dict(points).items())


def _curve_metrics(runs: list[Run]) -> list[tuple[str, list[str]]]:
    """(figure title, metric names) to draw: the kind's Curve views when all runs share a
    kind, else one figure per metric every run has."""
    from .kinds import kind_config
    from .kinds.spec import Curve, views

    series = [metric_series(EventReader(r.events_path).read_new()) for r in runs]
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    kinds = {r.kind for r in runs}
    figures: list[tuple[str, list[str]]] = []
    if len(kinds) == 1:
        import fnmatch

        for view in views(kind_config(kinds.pop())):
            if isinstance(view, Curve):
                names = [m for m in common if any(fnmatch.fnmatchcase(m, p) for p in view.metrics)]
                if names:
                    figures.append((view.title, names))
    return figures or [(name, [name]) for name in common]


def plot_runs(runs: list[Run], out_dir: Path) -> list[Path]:
    """Several runs overlaid, one PNG per curve view, styled by the parameters that differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = run_styles(runs, style_keys(runs))
    series = [metric_series(EventReader(r.events_path).read_new()) for r in runs]
    figures = _curve_metrics(runs)
    if not figures:
        raise UserError("these runs have no metric in common to plot")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for title, names in figures:
        fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=True):
            for run_series, style in zip(series, styles, strict=True):
                groups = run_series.get(name, {})
                for group, pts in sorted(groups.items()):
                    pts = _last_per_x(pts)
                    label = style["label"] + (f" [{group}]" if group else "")
                    ax.plot(
                        [p[0] for p in pts], [p[1] for p in pts], ms=5, **{**style, "label": label}
                    )
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("step" if name != "level" else "level", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        slug = "".join(ch if ch.isalnum() else "_" for ch in title.lower()).strip("_")
        dest = out_dir / f"compare_{slug}.png"
        fig.savefig(dest, dpi=110)
        plt.close(fig)
        written.append(dest)
    return written


# --------------------------------------------------------------------------- group overlay
# (styles: COLORS, MARKERS and LINESTYLES above)


def group_styles(
    members_coords: list[dict[str, Any]], color: str | None, style: str | None
) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """Matplotlib styles per member: colour from one grid axis, line style and marker from
    another, so a 2×2 grid reads as two colours × two line styles. Defaults: the first
    axis with more than one value colours, the next one styles."""
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
    color = color or (varying[0] if varying else None)
    style = style or next((k for k in varying if k != color), None)
    out = []
    for coords in members_coords:
        ci = axes[color].index(coords[color]) if color in coords else 0
        si = axes[style].index(coords[style]) if style and style in coords else 0
        out.append(
            {
                "color": COLORS[ci % len(COLORS)],
                "linestyle": LINESTYLES[si % len(LINESTYLES)],
                "marker": MARKERS[si % len(MARKERS)],
            }
        )
    return color, style, out


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
    """One PNG: `metric` over step/epoch/level, a line per member styled by grid axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coords = [group.coords(r) for r in group.members]
    color, style, styles = group_styles(coords, color, style)
    name, points = group_metric(group, metric)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, c, st, pts in zip(group.members, coords, styles, points, strict=True):
        if not pts:
            continue
        label = ", ".join(f"{k}={v}" for k, v in c.items()) or run.short_id
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ms=4, label=label, **st)
    ax.set_title(f"group {group.id}: {name}", fontsize=10)
    ax.set_xlabel("step / epoch / level", fontsize=8)
    ax.set_ylabel(name, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=f"colour: {color}" + (f", style: {style}" if style else ""))
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{group.id}_{name.replace('/', '_')}.png"
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest
