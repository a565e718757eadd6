"""The figure lines every benchmark prints, each checked against its goal.

A benchmark records each figure with `Figures.add` (a line `name: ratio=... (goal ...)`
is printed at once) and ends with `Figures.finish`, which names every missed goal and
exits 1 if there is one, so a script or `bench/run_all.py` sees a miss in the exit status.
When LABDECK_BENCH_FIGURES names a file, each figure is also appended to it as one JSON
line (what run_all tabulates). `skip(reason)` ends a benchmark that cannot run here
(exit status SKIP). Benchmarks take `--quick` for the reduced size run_all uses.
"""

from __future__ import annotations

import json
import operator
import os
import sys
from dataclasses import asdict, dataclass

SKIP = 77  # exit status of a benchmark that cannot run on this machine
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


@dataclass
class Figure:
    name: str
    value: float
    goal: str  # "<= 1.15", "> 1.0", or "" for a figure shown without a goal
    labdeck: str = ""  # what the two sides measured, with units
    baseline: str = ""
    unit: str = "ratio"

    @property
    def passed(self) -> bool | None:
        if not self.goal:
            return None
        op, _, bound = self.goal.partition(" ")
        return OPS[op](self.value, float(bound))


class Figures:
    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.figures: list[Figure] = []

    def add(
        self,
        name: str,
        value: float,
        goal: str = "",
        *,
        labdeck: str = "",
        baseline: str = "",
        unit: str = "ratio",
        note: str = "",
    ) -> Figure:
        """Print `name: unit=value (goal ...) labdeck ... / baseline ... [note]` and keep it."""
        if goal and goal.partition(" ")[0] not in OPS:
            raise ValueError(f"{name}: goal {goal!r} is not '<op> <number>'")
        fig = Figure(name, float(value), goal, labdeck, baseline, unit)
        self.figures.append(fig)
        sides = " /".join(
            f" {who} {what}" for who, what in (("labdeck", labdeck), ("baseline", baseline)) if what
        )
        verdict = {True: " PASS", False: " MISS", None: ""}[fig.passed]
        goal_text = f" (goal {goal})" if goal else ""
        extra = f" [{note}]" if note else ""
        print(f"{name}: {unit}={value:.3f}{goal_text}{sides}{verdict}{extra}", flush=True)
        path = os.environ.get("LABDECK_BENCH_FIGURES")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(
                    json.dumps({"bench": self.bench, **asdict(fig), "pass": fig.passed}) + "\n"
                )
        return fig

    def finish(self) -> None:
        """Exit 1 naming every missed goal; return when all goals are met."""
        missed = [f for f in self.figures if f.passed is False]
        for f in missed:
            print(f"MISSED {f.name}: {f.unit}={f.value:.3f}, goal {f.goal}", file=sys.stderr)
        if missed:
            sys.exit(1)


def skip(reason: str) -> None:
    """End a benchmark that cannot run here (no GPU, a missing tool), saying why."""
    print(f"skipped: {reason}", flush=True)
    sys.exit(SKIP)
