"""Validation errors as one line that blames the input the user typed.

A value can come from a preset file, a `--set`, a `--grid` axis; a check of a whole
table can fail because of several of them together. These helpers turn a pydantic
error (or a non-finite number) into `SOURCE: params.KEY: what was expected (got …)`
with SOURCE the flag or file that gave the value.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .errors import UserError, clip, shorten


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → dotted keys (lists stay whole values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def blame(loc: str, source: str, set_keys: set[str], flags: Mapping[str, str] | None = None) -> str:
    """Who gave the value at `loc`: a `--set` when it set that key (or one inside it), else `source`.

    `flags` names another flag for some keys (a grid's axes: `--grid`). A check of a
    whole table (loc "" or "memory") that a flag reached names that flag too, with the
    preset it applied to, since the combination is what fails.
    """

    def flag(key: str) -> str:
        return (flags or {}).get(key, "--set")

    owner = next((k for k in set_keys if loc == k or loc.startswith(k + ".")), None)
    if owner is not None:
        return f"{flag(owner)} {loc}"
    inside = sorted(k for k in set_keys if not loc or k.startswith(loc + "."))
    if inside:
        by_flag: dict[str, list[str]] = {}
        for k in inside:
            by_flag.setdefault(flag(k), []).append(k)
        named = ", ".join(f"{f} {', '.join(keys)}" for f, keys in by_flag.items())
        return f"{named} (with {source})"
    return source


def describe_error(
    err: Mapping[str, Any],
    source: str,
    set_keys: set[str],
    params_cls: type[BaseModel],
    flags: Mapping[str, str] | None = None,
) -> str:
    loc = ".".join(str(x) for x in err.get("loc", ()))
    source = blame(loc, source, set_keys, flags)
    if err.get("type") == "extra_forbidden":
        known = list(flatten(params_cls().model_dump(mode="json")))
        close = difflib.get_close_matches(loc, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = ", ".join(known)
        return (
            f"{source}: params.{shorten(loc)}: unknown parameter; {hint}expected one of: "
            f"{shorten(listed, 300)}"
        )
    got = err.get("input")
    got_txt = f" (got {clip(got)})" if not isinstance(got, dict) else ""
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    name = f"params.{loc}" if loc else "params"
    return f"{source}: {name}: {shorten(msg, 300)}{got_txt}"


def refuse_non_finite(
    values: dict[str, Any], source: str, set_keys: set[str], flags: Mapping[str, str] | None
) -> None:
    """No parameter of any kind is NaN or infinite: config.json (JSON) cannot even hold one,
    and a run would only "complete" with NaN results."""
    for key, value in flatten(values).items():
        stack = [value]
        while stack:
            v = stack.pop()
            if isinstance(v, list | tuple):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, float) and not math.isfinite(v):
                raise UserError(
                    f"{blame(key, source, set_keys, flags)}: params.{key}: must be a finite number "
                    f"(got {clip(value)})"
                )
