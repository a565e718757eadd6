"""Parameter columns and parameter filters shared by `labdeck ls` and the dashboard.

A researcher tells twenty runs apart by what was changed between them, not by their
ids: `differing_params` finds the (dotted) parameters whose values are not the same in
every listed run, so the runs table and `ls --columns auto` show exactly those, and
`ParamFilter` keeps the runs a condition such as `lr>1e-3` or `method=mult_gauss`
selects. Pure functions over config dicts: no kind code, no file access.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UserError

# Parameters that differ between runs by construction and say nothing about the setup.
NOT_COLUMNS = frozenset({"run_id", "output_dir", "results_dir"})


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameter tables as dotted names (`optim.lr`); lists stay whole values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, name + "."))
        else:
            out[name] = value
    return out


def params_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's parameters (config.json `params`) flattened, plus its launcher options as
    `launch.*` (a resource difference is a difference between runs too)."""
    flat = flatten_params(config.get("params") or {})
    launcher = config.get("launcher")
    if isinstance(launcher, Mapping):
        flat.update(flatten_params(launcher, "launch."))
    return {k: v for k, v in flat.items() if k.split(".")[-1] not in NOT_COLUMNS}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing_params(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Dotted names with more than one value among the runs that have them, in the order
    they first appear: the columns that tell the listed runs apart.

    One run, or runs that agree on everything, give no column."""
    runs = list(runs)
    if len(runs) < 2:
        return []
    values: dict[str, set[str]] = {}
    for params in runs:
        for name, value in params.items():
            values.setdefault(name, set()).add(_key(value))
    # a parameter only some runs have (another kind's) is not a difference between setups
    return [n for n, vs in values.items() if len(vs) > 1]


def choose_columns(auto: list[str], spec: str | None, known: Iterable[str]) -> list[str]:
    """The parameter columns for a user's SPEC: `auto` (the differing ones), `lr,seed`
    (exactly these), or `+name`/`-name` edits of the automatic set; an unknown name is
    a UserError naming the parameters there are."""
    if not spec or spec.strip() == "auto":
        return list(auto)
    known = set(known)
    items = [s.strip() for s in re.split(r"[,\s]+", spec) if s.strip()]
    edits = all(i[0] in "+-" for i in items if i != "auto")
    cols = list(auto) if edits or "auto" in items else []
    for item in items:
        if item == "auto":
            continue
        name = item.lstrip("+-")
        if name not in known:
            choices = ", ".join(sorted(known)) or "none"
            raise UserError(f"column {name!r}: no such parameter in these runs (have: {choices})")
        if item.startswith("-"):
            cols = [c for c in cols if c != name]
        elif name not in cols:
            cols.append(name)
    return cols


def fmt_param(value: Any, width: int = 12) -> str:
    """A parameter value in a table cell: numbers compact (1e-05, 0.3), text as is."""
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_EXPR = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|!=|==|>|<|=)\s*(.+?)\s*$")


def is_param_expr(text: str) -> bool:
    return bool(_EXPR.match(text))


@dataclass(frozen=True)
class ParamFilter:
    """One condition on a parameter: `lr>1e-3`, `method=mult_gauss`, `levels!=[0.0]`.

    Numbers compare as numbers; anything else compares as its text (`=`/`!=` only). A
    run without the parameter never matches (so `seed=1` hides runs of other kinds)."""

    name: str
    op: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> ParamFilter:
        m = _EXPR.match(text)
        if not m:
            raise UserError(
                f"{text!r}: not a parameter condition (write NAME OP VALUE, OP one of "
                "> >= < <= = !=; e.g. lr>1e-3)"
            )
        name, op, raw = m.groups()
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if op in (">", ">=", "<", "<=") and not _is_number(value):
            raise UserError(f"{text!r}: {op} needs a number, got {raw!r}")
        return cls(name, "=" if op == "==" else op, value)

    def __call__(self, params: Mapping[str, Any]) -> bool:
        if self.name not in params:
            return False
        have = params[self.name]
        if _is_number(self.value) and _is_number(have):
            return _OPS[self.op](float(have), float(self.value))
        if self.op in (">", ">=", "<", "<="):
            return False
        same = _key(have) == _key(self.value) or str(have) == str(self.value)
        return same if self.op == "=" else not same

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_key(self.value) if not isinstance(self.value, str) else self.value}"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
