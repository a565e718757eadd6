"""The local queue against starting the same runs by hand, and Slurm submission latency.

1. Eight runs (`--runs`), each a real `labdeck` runner process: started one after another
   by hand (`labdeck run` eight times, what a researcher's shell script does, as the seed's four
   scripts do) against one `labdeck run --grid` through the local queue at concurrency 1
   (the queue should cost nothing: ratio >= 0.95) and at concurrency 2 (single-threaded
   runs on 2 cores: near-linear speed-up, goal >= 1.5). The sides alternate, rounds repeat;
   each side's fastest round counts (noise on the machine only adds time).
2. Slurm: wall time from `labdeck run --launcher slurm` to the run's first event in
   events.jsonl (what the dashboard sees), against a local `--detach` start of the same run.
   Needs a cluster (scripts/local-slurm.sh); skipped with a line otherwise.

Work per run: by default CPU-bound single-thread training of a tiny `kt` config (what a
queue of real runs does: compete for the cores); `--kind counter` is the protocol kind
(tests/core/kinds), `--units` units of `--unit-seconds` of sleep, which measures only the
queue's own bookkeeping.

Usage: python bench/bench_queue.py [--rounds 2] [--runs 8] [--kind kt|counter] [--skip-slurm]
                                   [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from figures import Figures  # noqa: E402

KT = {
    "sim_num_students": 120, "sim_num_skills": 6, "sim_seq_len": 20, "seq_len": 20,
    "d_model": 16, "n_heads": 2, "num_encoder_blocks": 1, "d_ff": 32, "epochs": 2,
    "batch_size": 16, "max_semantic_students": 30, "alignment_global_students": 60,
    "max_correlation_students": 40,
}  # fmt: skip


def labdeck(args: list[str], results: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        LABDECK_RESULTS=str(results),
        LABDECK_KIND_PATH=str(REPO / "tests" / "core" / "kinds"),
        OMP_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "labdeck.backend.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip


def work_args(opts: argparse.Namespace) -> list[str]:
    if opts.kind == "kt":
        return ["--kind", "kt", *(x for k, v in KT.items() for x in ("--set", f"{k}={v}"))]
    return ["--kind", "counter", "--set", f"units={opts.units}",
            "--set", f"unit_seconds={opts.unit_seconds}"]  # fmt: skip


def by_hand(opts: argparse.Namespace, results: Path) -> float:
    t0 = time.perf_counter()
    for seed in range(opts.runs):
        labdeck(["run", *work_args(opts), "--set", f"seed={seed}", "--quiet"], results)
    return time.perf_counter() - t0


def queued(opts: argparse.Namespace, results: Path, concurrency: int) -> float:
    t0 = time.perf_counter()
    seeds = ",".join(str(s) for s in range(opts.runs))
    labdeck(
        ["run", *work_args(opts), "--grid", f"seed={seeds}",
         "--launch", f"concurrency={concurrency}", "--quiet"], results,
    )  # fmt: skip
    return time.perf_counter() - t0


def first_event_latency(args: list[str], results: Path) -> float:
    """Seconds from the command's start to the first line of the new run's events.jsonl."""
    before = set(results.iterdir()) if results.exists() else set()
    t0 = time.perf_counter()
    labdeck(["run", *args, "--quiet"], results)
    (run,) = [p for p in results.iterdir() if p not in before and (p / "config.json").exists()]
    while not (run / "events.jsonl").exists() or not (run / "events.jsonl").stat().st_size:
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"{run}: no event after 120 s")
        time.sleep(0.02)
    return time.perf_counter() - t0


def bench_slurm(opts: argparse.Namespace, tmp: Path) -> None:
    if opts.skip_slurm or not shutil.which("sbatch"):
        print("slurm: skipped (no sbatch; run scripts/local-slurm.sh as root)")
        return
    args = ["--kind", "counter", "--set", "units=2"]
    slurm, local = [], []
    for i in range(opts.latency_rounds):
        for side in ("slurm", "local") if i % 2 == 0 else ("local", "slurm"):
            res = tmp / f"lat-{side}-{i}"
            if side == "slurm":
                slurm.append(first_event_latency([*args, "--launcher", "slurm"], res))
            else:
                local.append(first_event_latency([*args, "--detach"], res))
    ms, ml = statistics.median(slurm), statistics.median(local)
    print(
        f"slurm submit -> first event: median {ms:.2f} s over {len(slurm)} "
        f"(local --detach: {ml:.2f} s; slurm/local {ms / ml:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=8, help="runs per side")
    ap.add_argument("--kind", choices=["kt", "counter"], default="kt")
    ap.add_argument("--units", type=int, default=10)
    ap.add_argument("--unit-seconds", type=float, default=0.1)
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--skip-slurm", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 runs per side, 2 rounds, no Slurm")
    opts = ap.parse_args()
    if opts.quick:
        opts.runs, opts.rounds, opts.skip_slurm = 2, 2, True
    figures = Figures("bench_queue")
    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    times: dict[str, list[float]] = {"hand": [], "queue1": [], "queue2": []}
    try:
        bench_slurm(opts, tmp)
        sides = list(times)
        for r in range(opts.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for side in order:
                res = tmp / f"{side}-{r}"
                if side == "hand":
                    times[side].append(by_hand(opts, res))
                else:
                    times[side].append(queued(opts, res, int(side[-1])))
            print(
                f"round {r + 1}: " + "  ".join(f"{s} {times[s][-1]:.2f} s" for s in sides),
                flush=True,
            )
        # each side's fastest round: the machine's noise only ever adds time
        hand, q1, q2 = (min(times[s]) for s in sides)
        print(f"work: {opts.runs} runs of {opts.kind}; {os.cpu_count()} CPUs")
        figures.add("queue_concurrency2", hand / q2, ">= 1.5", labdeck=f"{q2:.2f}s queue, 2 at once",
                    baseline=f"{hand:.2f}s by hand", note="speed-up over by hand")  # fmt: skip
        figures.add("queue_concurrency1", hand / q1, ">= 0.95", labdeck=f"{q1:.2f}s queue",
                    baseline=f"{hand:.2f}s by hand", note="by-hand time / queue time")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures.finish()


if __name__ == "__main__":
    main()
