"""Groups: the runs one grid produced, found again from their own config.json.

A group has no file of its own: every member records `group` = {id, axes, coords,
index, size} in its write-once config.json, so a group survives copying, deleting a
member, or a results folder watched from another machine. Verbs that take RUN also
take a GROUP id (`g123456`) and then act on every member.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .runs import Run, effective_status, is_repro_id, list_runs, resolve_run

GROUP_ID = re.compile(r"^g\d{6}$")


def group_of(run: Run) -> dict[str, Any] | None:
    try:
        return run.config.get("group")
    except UserError:
        return None


@dataclass
class Group:
    id: str
    axes: dict[str, list[Any]]
    members: list[Run] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.members[0].kind if self.members else "?"

    @property
    def title(self) -> str:
        g = group_of(self.members[0]) if self.members else None
        return (g or {}).get("title", "")

    def coords(self, run: Run) -> dict[str, Any]:
        return (group_of(run) or {}).get("coords", {})

    def statuses(self) -> Counter:
        return Counter(effective_status(r.state()) for r in self.members)

    def progress(self) -> tuple[int, int]:
        """(members completed, members): a group's units are its runs, whatever units
        each member counts in (a queued member has reported no total yet)."""
        done = sum(1 for r in self.members if effective_status(r.state()) == "completed")
        return done, len(self.members)

    def best(self) -> tuple[Run, str, float] | None:
        """The member with the best primary metric (higher is better unless the kind says lower)."""
        scored = []
        for r in self.members:
            key = r.state().get("key_metric") or {}
            if isinstance(key.get("value"), int | float):
                scored.append((r, str(key.get("name")), float(key["value"])))
        if not scored:
            return None
        lower = _lower_is_better(self.kind, scored[0][1])
        return (min if lower else max)(scored, key=lambda t: t[2])


def _lower_is_better(kind: str, metric: str) -> bool:
    from .kinds import kind_config

    try:
        cfg = kind_config(kind)
    except UserError:
        return False
    flag = getattr(cfg, "LOWER_IS_BETTER", None)
    if isinstance(flag, bool):
        return flag
    return any(w in metric.lower() for w in ("loss", "error", "perplexity", "rmse", "mae"))


def list_groups(results: Path, runs: list[Run] | None = None) -> dict[str, Group]:
    """Group id → Group, members in grid order; runs outside any group are left out."""
    groups: dict[str, Group] = {}
    for r in runs if runs is not None else list_runs(results):
        g = None if is_repro_id(r.id) else group_of(r)  # a reproduction copies config.json
        if not g or not g.get("id"):
            continue
        grp = groups.setdefault(g["id"], Group(g["id"], g.get("axes", {})))
        grp.members.append(r)
    for grp in groups.values():
        grp.members.sort(key=lambda r: (group_of(r) or {}).get("index", 0))
    return groups


def find_group(results: Path, token: str) -> Group | None:
    token = token.rstrip("/")
    if not GROUP_ID.match(token):
        return None
    return list_groups(results).get(token)


def resolve_targets(results: Path, token: str) -> list[Run]:
    """RUN or GROUP as the user typed it → the runs to act on."""
    grp = find_group(results, token)
    if grp is not None:
        return grp.members
    if GROUP_ID.match(token.rstrip("/")):
        raise UserError(f"{token}: no group with that id in {results}/")
    return [resolve_run(results, token)]
