"""Run every benchmark in bench/ at its reduced size and print one table of figures.

Every `bench/bench_*.py` is found by name, so a new benchmark joins without an edit
here. Each runs in its own process, one after another (timings on a shared machine
are noisy enough without two benchmarks competing), with `--quick` when it takes
that flag (the convention: a reduced size that keeps every comparison), under a
per-benchmark time limit. Figures come from bench/figures.py (one JSON line each);
a benchmark that prints `name: unit=value (goal OP number)` lines without it is read
from its output. Exit status 77 (`figures.skip`) means "cannot run here" (no GPU, no
cluster): shown as skipped, not failed.

Table columns: figure, labdeck, baseline, value (a ratio unless the unit says
otherwise), goal, pass. Exit status 1 when a figure misses its goal or a benchmark
fails without figures. Full outputs are kept in --logs.

Usage: python bench/run_all.py [--only kt,sweep] [--timeout 300] [--full] [--logs DIR]
(bench/run_all.sh runs it with the project's virtualenv).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from figures import OPS, SKIP  # noqa: E402

# reduced sizes for benchmarks that do not take --quick
QUICK_ARGS = {"bench_tui.py": ["--events", "200000", "--seconds", "3", "--rounds", "1"]}
LINE = re.compile(
    r"^(?P<name>[\w.-]+): (?P<unit>[\w%]+)=(?P<value>[-+\d.eE]+)\S*"
    r"(?: \(goal (?P<op><=|>=|<|>) ?(?P<bound>[-+\d.]+)[^)]*\))?"
)


def discover(only: list[str]) -> list[Path]:
    found = sorted(BENCH.glob("bench_*.py"))
    if only:
        found = [p for p in found if any(o in p.stem for o in only)]
    return found


def command(path: Path, full: bool) -> list[str]:
    args: list[str] = []
    if not full:
        if "--quick" in path.read_text(encoding="utf-8"):
            args = ["--quick"]
        else:
            args = QUICK_ARGS.get(path.name, [])
    return [sys.executable, str(path), *args]


def parse_output(bench: str, text: str) -> list[dict]:
    """Figures of a benchmark that prints figure lines without bench/figures.py."""
    rows = []
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        goal = f"{m['op']} {m['bound']}" if m["op"] else ""
        value = float(m["value"])
        passed = OPS[m["op"]](value, float(m["bound"])) if m["op"] else None
        rows.append({"bench": bench, "name": m["name"], "value": value, "goal": goal,
                     "labdeck": "", "baseline": "", "unit": m["unit"], "pass": passed})  # fmt: skip
    return rows


def run_one(path: Path, full: bool, timeout: float, logs: Path) -> tuple[list[dict], str, float]:
    """(figures, status, seconds) of one benchmark."""
    figures_file = logs / f"{path.stem}.figures.jsonl"
    figures_file.unlink(missing_ok=True)
    env = dict(os.environ, LABDECK_BENCH_FIGURES=str(figures_file), PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            command(path, full), env=env, cwd=BENCH.parent, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        out, rc = out + f"\n(time limit {timeout:.0f} s)", None
    seconds = time.perf_counter() - t0
    (logs / f"{path.stem}.log").write_text(out, encoding="utf-8")
    if figures_file.is_file():
        rows = [json.loads(x) for x in figures_file.read_text().splitlines() if x.strip()]
    else:
        rows = parse_output(path.stem, out)
    if rc == SKIP:
        reason = next((x for x in out.splitlines() if x.startswith("skipped:")), "skipped")
        return rows, reason, seconds
    if rc is None:
        return rows, f"timed out after {timeout:.0f} s", seconds
    if rc and not any(r["pass"] is False for r in rows):
        last = out.strip().splitlines()[-1:] or ["no output"]
        return rows, f"failed (exit {rc}): {last[0][:80]}", seconds
    return rows, "ok" if rc == 0 else "missed a goal", seconds


def table(rows: list[dict]) -> str:
    head = ("figure", "labdeck", "baseline", "value", "goal", "pass")
    body = []
    for r in rows:
        value = f"{r['value']:.3f}" + ("" if r["unit"] == "ratio" else f" {r['unit']}")
        verdict = {True: "yes", False: "NO", None: "-"}[r["pass"]]
        body.append((r["name"], r["labdeck"], r["baseline"], value, r["goal"] or "-", verdict))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    widths[1] = min(widths[1], 40)
    widths[2] = min(widths[2], 40)

    def fmt(cells) -> str:
        return "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *(fmt(b) for b in body)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated parts of benchmark names")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per benchmark")
    ap.add_argument("--full", action="store_true", help="full sizes (no --quick)")
    ap.add_argument("--logs", type=Path, default=None, help="folder for each benchmark's output")
    args = ap.parse_args()
    logs = args.logs or Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    all_rows: list[dict] = []
    failed = False
    t0 = time.perf_counter()
    for path in discover([o for o in args.only.split(",") if o]):
        rows, status, seconds = run_one(path, args.full, args.timeout, logs)
        print(f"{path.stem:<20} {seconds:6.0f} s  {status}", flush=True)
        all_rows += rows
        failed |= status not in ("ok",) and not status.startswith("skipped")
    print(f"\nall benchmarks: {time.perf_counter() - t0:.0f} s; outputs in {logs}\n")
    print(table(all_rows))
    sys.exit(1 if failed or any(r["pass"] is False for r in all_rows) else 0)


if __name__ == "__main__":
    main()
