"""The Runs screen's search box as a query: words, `status:`, `kind:`, `tag:`,
`group:` and parameter conditions (`lr>1e-3`, `method=mult_gauss`) in one line.

`status:failed kt lr>1e-3` keeps failed kt runs whose lr exceeds 1e-3. Pure Python,
so the same rules are tested without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labdeck.backend.errors import UserError
from labdeck.backend.paramcols import ParamFilter, is_param_expr

from .runlist import RunRow

FIELDS = ("status", "kind", "tag", "group")


@dataclass
class RunQuery:
    words: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    params: list[ParamFilter] = field(default_factory=list)
    problem: str | None = None  # a condition that could not be read, said once

    @classmethod
    def parse(cls, text: str) -> RunQuery:
        q = cls()
        for token in text.split():
            name, sep, value = token.partition(":")
            if sep and name.lower() in FIELDS and value:
                q.fields[name.lower()] = value.lower()
            elif is_param_expr(token):
                try:
                    q.params.append(ParamFilter.parse(token))
                except UserError as exc:
                    q.problem = str(exc)
            else:
                q.words.append(token.lower())
        return q

    def __bool__(self) -> bool:
        return bool(self.words or self.fields or self.params)

    def matches(self, row: RunRow) -> bool:
        f = self.fields
        if "status" in f and not row.status.startswith(f["status"]):
            return False
        if "kind" in f and row.kind.lower() != f["kind"]:
            return False
        if "tag" in f and f["tag"] not in (t.lower() for t in row.tags):
            return False
        if "group" in f and f["group"] not in (row.group_id or "").lower():
            return False
        if not all(p(row.params) for p in self.params):
            return False
        text = row.search_text()
        return all(w in text for w in self.words)

    def describe(self) -> str:
        parts = [f"{k}:{v}" for k, v in self.fields.items()]
        parts += [str(p) for p in self.params]
        parts += [f"“{w}”" for w in self.words]
        return " ".join(parts)
