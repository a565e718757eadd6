"""Folding grid members into one row per group for the Runs table.

Members carry `group_id` on their RunRow (from config.json); `fold` turns the flat,
ordered list of rows into entries where a group is one `GroupRow` (status counts,
progress, best primary metric) followed by its members only when expanded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .runlist import RunRow

GROUP_KEY = "group:"


@dataclass
class GroupRow:
    id: str
    members: list[RunRow] = field(default_factory=list)
    expanded: bool = False

    @property
    def key(self) -> str:
        return GROUP_KEY + self.id

    @property
    def short_id(self) -> str:
        return self.id

    @property
    def kind(self) -> str:
        return self.members[0].kind if self.members else "?"

    @property
    def title(self) -> str:
        return self.members[0].group_title if self.members else ""

    @property
    def counts(self) -> Counter:
        return Counter(m.status for m in self.members)

    @property
    def status(self) -> str:
        """The group's headline status: running or queued while any member is, else the worst."""
        c = self.counts
        for s in ("running", "queued", "crashed", "failed", "interrupted", "completed"):
            if c.get(s):
                return s
        return "queued"

    @property
    def fraction(self) -> float:
        if not self.members:
            return 0.0
        return sum(m.fraction for m in self.members) / len(self.members)

    def best(self) -> RunRow | None:
        scored = [m for m in self.members if isinstance(m.key_value, int | float)]
        if not scored:
            return None
        name = (scored[0].key_name or "").lower()
        lower = any(w in name for w in ("loss", "error", "perplexity"))
        return (min if lower else max)(scored, key=lambda m: m.key_value)

    def summary(self) -> str:
        return " ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))

    def search_text(self) -> str:
        return " ".join([self.id, *(m.search_text() for m in self.members)])


def fold(rows: list[RunRow], expanded: set[str]) -> list[RunRow | GroupRow]:
    """Rows in their order, each group once (where its first member appears), members
    after it when the group is in `expanded`."""
    groups: dict[str, GroupRow] = {}
    for r in rows:
        if r.group_id:
            groups.setdefault(r.group_id, GroupRow(r.group_id, expanded=r.group_id in expanded))
            groups[r.group_id].members.append(r)
    out: list[RunRow | GroupRow] = []
    placed: set[str] = set()
    for r in rows:
        if not r.group_id:
            out.append(r)
            continue
        if r.group_id in placed:
            continue
        placed.add(r.group_id)
        g = groups[r.group_id]
        g.members.sort(key=lambda m: m.group_index)
        out.append(g)
        if g.expanded:
            out.extend(g.members)
    return out
