"""What the Monitor and Compare plots share: declared views, x axes, smoothing, labels.

A kind declares its views (`Curve`s) in its config.py; this module turns them into
series names of a `RunView` without importing any kind code beyond that declaration.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from .data import RunView
from .widgets.series_plot import Curve

X_LABEL = {"epoch": "epoch", "wall": "wall time (s)"}
SMOOTHING = (0.0, 0.6, 0.9)  # exponential moving average weights of the previous value


def kind_views(kind: str) -> list[Any]:
    """The kind's declared Curve views (from its config.py only; [] if unknown)."""
    try:
        from labdeck.backend.kinds import kind_config
        from labdeck.backend.kinds.spec import Curve as CurveSpec
        from labdeck.backend.kinds.spec import views

        return [v for v in views(kind_config(kind)) if isinstance(v, CurveSpec)]
    except Exception:
        return []


def kind_tables(kind: str) -> list[Any]:
    """The kind's declared Table views ([] if none or unknown)."""
    try:
        from labdeck.backend.kinds import kind_config
        from labdeck.backend.kinds.spec import Table, views

        return [v for v in views(kind_config(kind)) if isinstance(v, Table)]
    except Exception:
        return []


def matching(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    """Series names a view's metric patterns select; `name` also matches `name[group]`."""
    out = []
    for pattern in patterns:
        for n in names:
            base = n.split("[", 1)[0]
            if (fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(base, pattern)) and (
                n not in out
            ):
                out.append(n)
    return out


SMOOTH_MIN_POINTS = 20  # fewer points than this are drawn raw: an average would invent a trend
_SEPARATORS = ".:[]"


def name_parts(name: str) -> list[str]:
    """A series name as a path: `trajectory:loss_shares.lag` -> trajectory, loss_shares,
    lag; `perplexity[attention]` -> perplexity, attention."""
    parts, cur = [], ""
    for ch in name:
        if ch in _SEPARATORS:
            if cur:
                parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts or [name]


@dataclass
class TreeRow:
    """One row of the series tree: a group heading (`name` None) or a series."""

    depth: int
    label: str
    name: str | None


def series_tree(names: list[str]) -> list[TreeRow]:
    """Series grouped by prefix as a tree (`train_loss` › `bce`; `trajectory` ›
    `loss_shares` › `lag`): each row shows its last part only, indented under its group,
    so a long name never needs cutting in the middle."""
    rows: list[TreeRow] = []
    shown: set[tuple[str, ...]] = set()
    as_series = {tuple(name_parts(n)): n for n in names}
    for n in names:
        parts = name_parts(n)
        for depth in range(len(parts)):
            prefix = tuple(parts[: depth + 1])
            if prefix in shown:
                continue
            shown.add(prefix)
            rows.append(TreeRow(depth, parts[depth], as_series.get(prefix)))
    return rows


def cut_left(label: str, width: int) -> str:
    """`label` in at most `width` characters, cut from the left at a part boundary
    (`…loss_shares.lag`), then at a word boundary inside the last part
    (`…corr_gain`), and mid-word only when one word alone is wider than `width`."""
    if len(label) <= width:
        return label
    tail = label
    for boundaries in (_SEPARATORS, "_-"):
        while len(tail) > width - 1:
            cut = min((i for i in (tail.find(c) for c in boundaries) if i >= 0), default=-1)
            if cut < 0:
                break
            tail = tail[cut + 1 :]
    if len(tail) > width - 1:
        tail = tail[-(width - 1) :]
    return "…" + tail


def abbreviate(names: list[str], width: int) -> dict[str, str]:
    """Labels of at most `width` characters: the whole name when it fits, else cut from
    the left at a part boundary (the distinctive end stays), never in the middle."""
    return {n: cut_left(n, max(4, width)) for n in names}


def smooth(ys: list[float], alpha: float) -> list[float]:
    if not alpha or len(ys) < 3:
        return ys
    out, acc = [], ys[0]
    for y in ys:
        acc = alpha * acc + (1 - alpha) * y
        out.append(acc)
    return out


def smoothable(axis: str, points: int) -> bool:
    """Smoothing is for long noisy curves: never for a sweep (each level is its own
    measurement) or a series under SMOOTH_MIN_POINTS points."""
    return axis != "level" and points >= SMOOTH_MIN_POINTS


def x_modes(view: RunView, names: list[str]) -> list[str]:
    """The x axes these series have: as emitted always; epoch only for step (or event)
    series of a run that reports epochs; wall time for anything that is not a sweep."""
    axes = {view.axis(n) for n in names if view.series(n) is not None}
    modes = ["native"]
    if view.epoch_marks and axes & {"step", "event"}:
        modes.append("epoch")
    if axes - {"level"}:
        modes.append("wall")
    return modes


def smoothing_note(curves: list[Curve], alpha: float) -> str:
    """The title's word on smoothing: always said when it is on, and which curves it
    left raw (sweeps, short series)."""
    if not alpha:
        return ""
    raw = [c.label for c in curves if not c.smoothed]
    if not raw:
        return f"smoothed {alpha:g}"
    if len(raw) == len(curves):
        return f"smoothing {alpha:g} not applied (sweep or < {SMOOTH_MIN_POINTS} points)"
    return f"smoothed {alpha:g} (raw: {', '.join(raw)})"


def curve_of(
    view: RunView, name: str, label: str, x_mode: str, alpha: float
) -> tuple[Curve | None, str]:
    """A plotted curve of series `name` on the chosen x axis, and that axis's label."""
    s = view.series(name)
    if s is None:
        return None, ""
    xs, ys = s.points()
    native = axis = view.axis(name)
    if x_mode == "wall" and native != "level":
        t0 = view.first_t or 0.0
        xs = [t - t0 for t in s.times()]
        axis = X_LABEL["wall"]
    elif x_mode == "epoch" and axis not in ("epoch", "level"):
        mapped = [view.epoch_at(t) for t in s.times()]
        if all(m is not None for m in mapped):
            xs, axis = mapped, "epoch"  # type: ignore[assignment]
    smoothed = bool(alpha) and smoothable(native, len(ys))
    ys = smooth(list(ys), alpha) if smoothed else list(ys)
    return Curve(label, list(xs), ys, smoothed=smoothed), axis
