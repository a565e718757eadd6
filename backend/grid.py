"""Grids: one preset → the cartesian product of parameter values, a group of normal runs.

A grid is a list of axes (parameter → values), from a preset's `[grid]` table and
`--grid key=a,b` flags (a flag replaces the table's axis of the same key). Every member
is resolved and validated exactly like a single run before any directory exists, so a
bad grid (unknown key, wrong type, empty axis) is one line and no run directory.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .paramcols import flatten_params
from .presets import Resolved, parse_value, resolve, toml_value
from .runs import TITLE_MAX, slug

MIN_BASE = 8  # characters of the base title a member keeps, however long its coordinates


@dataclass
class Axis:
    key: str
    values: list[Any]
    source: str  # where it came from, for error messages


@dataclass
class Member:
    """One point of the grid: its coordinates and its resolved, explicit parameters."""

    index: int
    coords: dict[str, Any]
    resolved: Resolved

    def label(self) -> str:
        return " ".join(f"{k}={toml_value(v)}" for k, v in self.coords.items())

    def title(self, base: str) -> str:
        """The member's title: the base title plus its coordinates, kept short and path-safe.
        The coordinates are what tells members apart, so when the whole is too long the
        base is cut first, then the axis names are dropped; the values stay."""
        if not self.coords:
            return slug(base)
        named = slug(
            "_".join(f"{k.rsplit('.', 1)[-1]}-{_short(v)}" for k, v in self.coords.items())
        )
        coords = named
        if len(named) > TITLE_MAX - MIN_BASE - 1:
            coords = slug("_".join(_short(v) for v in self.coords.values()))
        room = max(MIN_BASE, TITLE_MAX - len(coords) - 1)
        return slug(f"{slug(base)[:room].rstrip('-._')}_{coords}")


def _short(v: Any) -> str:
    text = toml_value(v).strip('"')
    return text if len(text) <= 16 else text[:16]


def split_values(text: str) -> list[str]:
    """`a,b,[1, 2],"x,y"` → the top-level comma-separated items (brackets and quotes kept whole)."""
    items, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur).strip())
    return items


def parse_grid_flag(item: str) -> Axis:
    """`--grid key=a,b,c`: values in TOML syntax, as `--set` takes them."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--grid {item!r}: expected key=value1,value2,...")
    texts = [t for t in split_values(raw)] if raw.strip() else []
    if not texts or any(t == "" for t in texts):
        raise UserError(f"--grid {key}: empty axis or empty value in {raw!r}; give values a,b,...")
    return Axis(key, [parse_value(t) for t in texts], f"--grid {key}")


def table_axes(table: dict[str, Any], source: str) -> list[Axis]:
    """A preset's `[grid]` table: each key is a (dotted) parameter, each value a list."""
    axes = []
    for key, values in flatten_params(table).items():
        if not isinstance(values, list):
            raise UserError(
                f"{source}: grid.{key}: expected a list of values, got {toml_value(values)}"
            )
        if not values:
            raise UserError(f"{source}: grid.{key}: empty axis; give at least one value")
        axes.append(Axis(key, list(values), f"{source}: grid.{key}"))
    return axes


def merge_axes(from_preset: list[Axis], from_flags: list[Axis]) -> list[Axis]:
    """Flags replace a preset axis of the same key; order: the preset's, then new flags.

    The same key in two `--grid` flags is an error: keeping either would drop values the
    user typed, and a union would be a guess about what was meant.
    """
    by_key = {a.key: a for a in from_preset}
    flagged: dict[str, Axis] = {}
    for a in from_flags:
        if a.key in flagged:
            first = ",".join(toml_value(v) for v in flagged[a.key].values)
            again = ",".join(toml_value(v) for v in a.values)
            raise UserError(
                f"--grid {a.key}: given twice ({a.key}={first} and {a.key}={again}); "
                f"give every value in one flag, e.g. --grid {a.key}={first},{again}"
            )
        flagged[a.key] = by_key[a.key] = a
    return list(by_key.values())


# An axis `launch.<option>` varies a launcher option (`--launch option=value`) instead of
# a parameter: one sweep may ask different resources per member.
LAUNCH_PREFIX = "launch."


def launcher_sets(coords: dict[str, Any]) -> list[str]:
    """A member's launcher axes as `--launch` items."""
    return [
        f"{k[len(LAUNCH_PREFIX) :]}={toml_value(v)}"
        for k, v in coords.items()
        if k.startswith(LAUNCH_PREFIX)
    ]


def grid_size(axes: list[Axis]) -> int:
    """Members the axes make, counted before any is validated."""
    n = 1
    for a in axes:
        n *= len(a.values)
    return n


def expand(
    kind: str, raw: dict[str, Any], sets: list[str], axes: list[Axis], source: str = "grid"
) -> list[Member]:
    """Every member of the grid, validated; the first bad value stops with a one-line error
    blaming the `--grid` flag, the `--set` or the preset (`source`) that gave it."""
    if not axes:
        return []
    flags = {a.key: "--grid" for a in axes if a.source.startswith("--grid")}
    known = set(_flatten_params(kind))
    for a in axes:
        # a `launch.` axis is a launcher option, validated by the launcher (`launcher_sets`)
        if not a.key.startswith(LAUNCH_PREFIX) and a.key not in known:
            raise UserError(
                f"{a.source}: unknown parameter {a.key!r} of kind {kind!r}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
        if len(set(map(toml_value, a.values))) != len(a.values):
            raise UserError(f"{a.source}: the same value appears twice")
    members: list[Member] = []
    for i, combo in enumerate(itertools.product(*(a.values for a in axes))):
        coords = dict(zip((a.key for a in axes), combo, strict=True))
        member_sets = [
            *sets,
            *(f"{k}={toml_value(v)}" for k, v in coords.items() if not k.startswith(LAUNCH_PREFIX)),
        ]
        try:
            resolved = resolve(kind, raw, member_sets, source=source, flags=flags)
        except UserError as exc:
            bad = _axis_of(str(exc), axes)
            if bad is None or bad.source.startswith("--grid"):
                raise  # already names the flags (and the preset) that combine badly
            raise UserError(f"{bad.source}: {str(exc).split(': ', 1)[-1]}") from None
        members.append(Member(i, coords, resolved))
    return members


def _axis_of(message: str, axes: list[Axis]) -> Axis | None:
    """The axis a member's error is about (a preset `[grid]` axis is named by its table)."""
    for a in axes:
        if f"params.{a.key}" in message or f"--set {a.key}" in message:
            return a
    return None


def _flatten_params(kind: str) -> dict[str, Any]:
    from .presets import defaults_of, flatten

    return flatten(defaults_of(kind))


def new_group_id(taken: set[str]) -> str:
    """`g` + 6 digits: short enough to type, unique among the groups already in results/."""
    rng = random.SystemRandom()
    while True:
        gid = f"g{rng.randrange(10**6):06d}"
        if gid not in taken:
            return gid
