"""Benchmark figures: a missed goal is named and fails the exit status; run_all tabulates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import run_all  # noqa: E402
from figures import SKIP  # noqa: E402

BENCH = """
import sys
sys.path.insert(0, {bench!r})
from figures import Figures, skip
if "--skip" in sys.argv:
    skip("no GPU here")
f = Figures("bench_fake")
f.add("fast_path", 1.2 if "--quick" in sys.argv else 0.9, "<= 1.1", labdeck="1.2s", baseline="1.0s")
f.add("throughput", 3.5, ">= 3")
f.finish()
"""


def fake_bench(folder: Path, name: str = "bench_fake.py") -> Path:
    path = folder / name
    path.write_text(BENCH.format(bench=str(ROOT / "bench")))
    return path


def test_a_missed_goal_is_named_and_exits_1(tmp_path: Path):
    bench = fake_bench(tmp_path)
    out = tmp_path / "figures.jsonl"
    env = {"LABDECK_BENCH_FIGURES": str(out), "PATH": ""}
    missed = subprocess.run(
        [sys.executable, bench, "--quick"], capture_output=True, text=True, env=env
    )
    assert missed.returncode == 1
    assert "fast_path: ratio=1.200 (goal <= 1.1) labdeck 1.2s / baseline 1.0s MISS" in missed.stdout
    assert "MISSED fast_path" in missed.stderr and "throughput" not in missed.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["name"], r["pass"]) for r in rows] == [("fast_path", False), ("throughput", True)]
    met = subprocess.run([sys.executable, bench], capture_output=True, text=True)
    assert met.returncode == 0 and "fast_path: ratio=0.900 (goal <= 1.1)" in met.stdout
    skipped = subprocess.run([sys.executable, bench, "--skip"], capture_output=True, text=True)
    assert skipped.returncode == SKIP and "skipped: no GPU here" in skipped.stdout


def test_run_all_reads_figures_from_the_helper_or_from_plain_lines(tmp_path: Path):
    bench = fake_bench(tmp_path)
    rows, status, _ = run_all.run_one(bench, full=False, timeout=60, logs=tmp_path)
    assert status == "missed a goal"  # --quick was passed: the fake misses at that size
    assert [(r["name"], r["value"], r["pass"]) for r in rows] == [
        ("fast_path", 1.2, False),
        ("throughput", 3.5, True),
    ]
    table = run_all.table(rows).splitlines()
    assert table[0].split() == ["figure", "labdeck", "baseline", "value", "goal", "pass"]
    assert table[2].split()[-1] == "NO" and table[3].split()[-1] == "yes"
    plain = "x\nold_bench: ratio=0.95 (goal >= 1.0)\nload: warm_seconds=0.4 (goal <= 1.0 s)\n"
    parsed = run_all.parse_output("bench_old", plain)
    assert [(r["name"], r["pass"]) for r in parsed] == [("old_bench", False), ("load", True)]
