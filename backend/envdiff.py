"""Two runs' environments side by side: what besides the parameters can explain a gap.

A reproduction that FAILs with identical parameters usually differs here: another
torch or transformers, a dirty labdeck checkout, another GPU. config.json records the
environment once at creation (`env`, see envinfo.py); this flattens it into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .runs import Run

# The order a researcher reads: code, then libraries, then where it ran.
ORDER = ("labdeck", "commit", "dirty", "python", "torch", "transformers", "peft", "device")


@dataclass(frozen=True)
class EnvRow:
    name: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


def env_of(run: Run) -> dict[str, str]:
    """A run's recorded environment as flat text values (`-` where nothing was recorded)."""
    try:
        env: dict[str, Any] = dict(run.config.get("env") or {})
    except Exception:
        env = {}
    source = env.pop("labdeck_source", None) or {}
    flat = {k: _text(v) for k, v in env.items() if not isinstance(v, dict)}
    flat["commit"] = str(source.get("commit") or "-")[:12] if isinstance(source, dict) else "-"
    flat["dirty"] = _text(source.get("dirty")) if isinstance(source, dict) else "-"
    try:
        state = run.state()
    except Exception:
        state = {}
    if state.get("host"):
        flat["host"] = str(state["host"])
    if state.get("devices"):
        flat["visible GPUs"] = str(state["devices"])
    return flat


def _text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def env_diff(a: Run, b: Run) -> list[EnvRow]:
    """Every recorded environment field of both runs, known fields first."""
    ea, eb = env_of(a), env_of(b)
    names = [n for n in ORDER if n in ea or n in eb]
    names += sorted((set(ea) | set(eb)) - set(names))
    return [EnvRow(n, ea.get(n, "-"), eb.get(n, "-")) for n in names]
