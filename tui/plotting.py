"""What the Monitor and Compare plots share: declared views, x axes, smoothing, labels.

A kind declares its views (`Curve`s) in its config.py; this module turns them into
series names of a `RunView` without importing any kind code beyond that declaration.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from .data import RunView
from .widgets.series_plot import Curve

X_MODES = ("native", "epoch", "wall")
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


def abbreviate(names: list[str], width: int) -> dict[str, str]:
    """Labels of at most `width` characters that stay distinct: the common prefix is
    shortened first (`train_loss.prediction`, `train_loss.alignment` ->
    `…prediction`, `…alignment`), then the middle of what remains."""
    width = max(4, width)
    out: dict[str, str] = {}
    for n in names:
        out[n] = n if len(n) <= width else n[: width // 2 - 1] + "…" + n[-(width - width // 2) :]
    if len(set(out.values())) == len(names):
        return out
    for n in names:  # keep each name's distinctive end
        out[n] = n if len(n) <= width else "…" + n[-(width - 1) :]
    if len(set(out.values())) == len(names):
        return out
    return {n: (n if len(n) <= width else f"{i}:" + n[-(width - 3) :]) for i, n in enumerate(names)}


def smooth(ys: list[float], alpha: float) -> list[float]:
    if not alpha or len(ys) < 3:
        return ys
    out, acc = [], ys[0]
    for y in ys:
        acc = alpha * acc + (1 - alpha) * y
        out.append(acc)
    return out


def curve_of(
    view: RunView, name: str, label: str, x_mode: str, alpha: float
) -> tuple[Curve | None, str]:
    """A plotted curve of series `name` on the chosen x axis, and that axis's label."""
    s = view.series(name)
    if s is None:
        return None, ""
    xs, ys = s.points()
    axis = view.axis(name)
    if x_mode == "wall":
        t0 = view.first_t or 0.0
        xs = [t - t0 for t in s.times()]
        axis = X_LABEL["wall"]
    elif x_mode == "epoch" and axis not in ("epoch", "level"):
        mapped = [view.epoch_at(t) for t in s.times()]
        if all(m is not None for m in mapped):
            xs, axis = mapped, "epoch"  # type: ignore[assignment]
    return Curve(label, list(xs), smooth(list(ys), alpha)), axis
