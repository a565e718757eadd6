"""A parameter's type and bounds in a researcher's words, from the schema's text
(`Literal['auto', 'cpu']`, `>=0 <=1024`): the launch form and `labdeck params` say the
same thing. Machine outputs (`params --json`, `--format csv`) keep the schema's text."""

from __future__ import annotations

import ast
from typing import Any


def literal_choices(type_name: str) -> list[Any] | None:
    """`Literal['a', 'b']` → ['a', 'b'] (the schema gives types as text)."""
    if not type_name.startswith("Literal[") or not type_name.endswith("]"):
        return None
    try:
        values = ast.literal_eval("[" + type_name[len("Literal[") : -1] + "]")
    except (ValueError, SyntaxError):
        return None
    return list(values)


_PLAIN = {
    "bool": "on/off",
    "int": "whole number",
    "float": "number",
    "str": "text",
    "list[float]": "list of numbers",
    "list[int]": "list of whole numbers",
    "list[str]": "list of texts",
}


def human_type(type_name: str) -> str:
    """The schema's Python type in a researcher's words: `Literal['auto', 'cpu']` ->
    "one of auto, cpu", `str` -> "text", `int | None` -> "whole number or none"."""
    choices = literal_choices(type_name)
    if choices is not None:
        return "one of " + ", ".join(str(c) for c in choices)
    if type_name.startswith("list[") and type_name.endswith("]"):
        inner = type_name[len("list[") : -1]
        inner_choices = literal_choices(inner)
        if inner_choices is not None:
            return "list of: " + ", ".join(str(c) for c in inner_choices)
    if " | " in type_name:
        parts = [p.strip() for p in type_name.split("|")]
        return " or ".join("none" if p == "None" else human_type(p) for p in parts)
    return _PLAIN.get(type_name, type_name)


def _num(text: str) -> str:
    try:
        v = float(text)
    except ValueError:
        return text
    return str(int(v)) if v.is_integer() else f"{v:g}"


def human_bounds(bounds: str, type_name: str) -> str:
    """`>=0 <=1024` -> "0 to 1024", `>0.0 <1.0` -> "above 0, below 1", `len>=1` ->
    "not empty" (for a list: "at least 1 item")."""
    listy = type_name.startswith("list[")
    unit = "items" if listy else "characters"
    low = high = None
    len_low = len_high = None
    for token in bounds.split():
        if token.startswith("len>="):
            len_low = _num(token[5:])
        elif token.startswith("len<="):
            len_high = _num(token[5:])
        elif token.startswith(">="):
            low = ("", _num(token[2:]))
        elif token.startswith(">"):
            low = ("above ", _num(token[1:]))
        elif token.startswith("<="):
            high = ("", _num(token[2:]))
        elif token.startswith("<"):
            high = ("below ", _num(token[1:]))
    parts = []
    if low and high and not low[0] and not high[0]:
        parts.append(f"{low[1]} to {high[1]}")
    else:
        if low:
            parts.append(f"{low[0] or 'at least '}{low[1]}")
        if high:
            parts.append(f"{high[0] or 'at most '}{high[1]}")
    if len_low == "1" and not listy:
        parts.append("not empty")
    elif len_low:
        parts.append(f"at least {len_low} {unit if len_low != '1' else unit[:-1]}")
    if len_high:
        parts.append(f"up to {len_high} {unit}")
    return ", ".join(parts)
