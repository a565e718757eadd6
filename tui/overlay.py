"""Many runs on shared axes: the pure model behind the Overlay screen.

- a stable colour per run (the same run keeps its colour as the selection changes,
  as long as no two selected runs want the same one), the baseline drawn last (on top);
- the metric names of every selected run, filtered by a glob (`*loss*`, `val_*`);
- seeds folded: runs whose parameters differ only in seed(s) become one curve, the
  mean per x with a min–max band, as in W&B's grouped runs;
- charts paged in a rows × columns grid.

No screen code, so it is tested on hand-made series.
"""

from __future__ import annotations

import fnmatch
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# matplotlib's tab10 (what `labdeck plot` draws its PNGs with), as RGB so a terminal
# theme cannot make two of them look alike; plotext and Rich both take RGB
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (140, 86, 75),
    (127, 127, 127),
)
BASE = 6  # a run's first choice is among the most distinct six
SEED_KEYS = ("seed",)  # parameters whose runs are repeats of one setting


def run_colours(ids: Sequence[str], palette: Sequence[Any] = PALETTE) -> dict[str, Any]:
    """Each run's colour from a hash of its id (so it is the same in every view and
    session), moving to the next free colour on a clash; ids are placed in sorted
    order so the outcome does not depend on the order of selection."""
    taken: set[int] = set()
    out: dict[str, Any] = {}
    for rid in sorted(ids):
        slot = zlib.crc32(rid.encode()) % min(BASE, len(palette))
        for _ in range(len(palette)):
            if slot not in taken:
                break
            slot = (slot + 1) % len(palette)
        taken.add(slot)
        out[rid] = palette[slot]
        if len(taken) == len(palette):
            taken.clear()  # more runs than colours: start sharing
    return out


def metric_names(names: Iterable[str], glob: str = "") -> list[str]:
    """Sorted series names, those matching `glob` (a bare word matches as `*word*`)."""
    pattern = glob.strip()
    if pattern and not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    out = sorted(set(names))
    return [n for n in out if not pattern or fnmatch.fnmatchcase(n.lower(), pattern.lower())]


def page_of(names: list[str], rows: int, cols: int, page: int) -> tuple[list[str], int, int]:
    """The names on `page` (clamped) of a rows × cols grid; (names, page, pages)."""
    per = max(1, rows * cols)
    pages = max(1, math.ceil(len(names) / per))
    page = min(max(0, page), pages - 1)
    return names[page * per : (page + 1) * per], page, pages


@dataclass
class Line:
    """One curve to draw: a run, or a folded set of seeds (mean with lo/hi band)."""

    key: str  # the run id, or the seed set's label
    label: str
    colour: Any  # an RGB tuple (or a plotext colour name)
    xs: list[float]
    ys: list[float]
    lo: list[float] | None = None
    hi: list[float] | None = None
    members: int = 1
    pinned: bool = False


@dataclass
class SeedSet:
    """Runs whose parameters agree except for seeds; the first member names it."""

    label: str
    ids: list[str] = field(default_factory=list)


def seed_sets(params: dict[str, dict[str, Any]], differing: Sequence[str]) -> list[SeedSet]:
    """Runs (id -> flattened parameters) bucketed by every differing parameter but the
    seeds; a bucket's label names what sets it apart (`lr=0.001`, or `seeds` when
    seeds are all that differ)."""
    keep = [n for n in differing if n.rsplit(".", 1)[-1] not in SEED_KEYS]
    buckets: dict[str, SeedSet] = {}
    for rid, p in params.items():
        label = " ".join(f"{n.rsplit('.', 1)[-1]}={_short(p.get(n))}" for n in keep) or "seeds"
        buckets.setdefault(label, SeedSet(label)).ids.append(rid)
    return list(buckets.values())


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def band(curves: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[list[float], ...]:
    """Mean, min and max across curves at every x any of them has (each curve counts
    at an x only where it has a point: a shorter seed does not drag the mean to 0).
    Returns (xs, mean, lo, hi)."""
    at: dict[float, list[float]] = {}
    for xs, ys in curves:
        for x, y in zip(xs, ys, strict=False):
            if isinstance(y, int | float) and math.isfinite(y):
                at.setdefault(float(x), []).append(float(y))
    xs = sorted(at)
    mean = [sum(at[x]) / len(at[x]) for x in xs]
    lo = [min(at[x]) for x in xs]
    hi = [max(at[x]) for x in xs]
    return xs, mean, lo, hi


def lines_for(
    series: dict[str, tuple[list[float], list[float]]],
    labels: dict[str, str],
    colours: dict[str, Any],
    pinned: str | None,
    sets: list[SeedSet] | None = None,
) -> list[Line]:
    """The curves of one chart: one per run (`series` maps run id -> points), or one
    per seed set when `sets` is given; the baseline's line comes last (drawn on top)."""
    out: list[Line] = []
    if sets is None:
        for rid, (xs, ys) in series.items():
            out.append(Line(rid, labels.get(rid, rid), colours.get(rid, PALETTE[0]), xs, ys))
            out[-1].pinned = rid == pinned
    else:
        for s in sets:
            have = [series[r] for r in s.ids if r in series and series[r][0]]
            if not have:
                continue
            first = s.ids[0]
            if len(have) == 1:
                xs, ys = have[0]
                line = Line(
                    s.label, labels.get(first, s.label), colours.get(first, PALETTE[0]), xs, ys
                )
            else:
                xs, mean, lo, hi = band(have)
                line = Line(
                    s.label,
                    f"{s.label} ×{len(have)}",
                    colours.get(first, PALETTE[0]),
                    xs,
                    mean,
                    lo,
                    hi,
                    len(have),
                )
            line.pinned = pinned in s.ids
            out.append(line)
    return sorted(out, key=lambda line: line.pinned)
