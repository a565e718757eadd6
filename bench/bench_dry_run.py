"""The launch form's estimate: `labdeck run --kind smoke --dry-run --json` as the form
runs it (a subprocess), with the model geometry cache empty against filled.

Empty (what every dry run paid before the cache): the subprocess imports torch and
transformers and builds the model on the meta device to count its parameters. Filled:
the geometry comes from the cache keyed by the config's content, so neither is
imported. Both sides alternate; medians compared; the estimate must be identical.

Exits non-zero, naming the figure, when a goal is missed.

    python bench/bench_dry_run.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labdeck.backend.estimate import FOOTPRINT_CACHE  # noqa: E402
from labdeck.backend.launch import cli_argv  # noqa: E402
from labdeck.backend.models import cache_root  # noqa: E402

ARGS = ["run", "--kind", "smoke", "--dry-run", "--json"]


def dry_run() -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = subprocess.run(
        cli_argv(*ARGS), capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - t0
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, {k: report[k] for k in ("units", "memory_bytes", "seconds", "lines")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cache = cache_root() / FOOTPRINT_CACHE
    saved = cache.read_bytes() if cache.is_file() else None
    times: dict[str, list[float]] = {"empty": [], "filled": []}
    reports = {}
    try:
        for r in range(args.rounds):
            for side in ("empty", "filled") if r % 2 == 0 else ("filled", "empty"):
                if side == "empty":
                    cache.unlink(missing_ok=True)
                elif not cache.is_file():
                    dry_run()  # fill it
                seconds, reports[side] = dry_run()
                times[side].append(seconds)
    finally:
        if saved is not None:
            cache.write_bytes(saved)
    empty, filled = statistics.median(times["empty"]), statistics.median(times["filled"])
    same = reports["empty"] == reports["filled"]
    print(
        f"smoke dry run as the launch form runs it (median of {args.rounds}, "
        f"load {os.getloadavg()[0]:.1f}): geometry cache empty {empty:.2f}s, filled "
        f"{filled:.2f}s; same estimate: {same}"
    )
    print(f"dry_run_cached: ratio={empty / filled:.1f}x faster (goal >= 3, same estimate)")
    misses = [] if same and empty / filled >= 3 else ["dry_run_cached"]
    if misses:
        raise SystemExit(f"missed goal: {', '.join(misses)}")


if __name__ == "__main__":
    main()
