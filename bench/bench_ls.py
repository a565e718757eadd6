"""`labdeck ls` over 1,000 runs: file-system operations per run and wall time.

On NFS every open and stat is a round trip to the server, so what a listing costs is
the number of metadata operations it makes per run. This builds a results folder of
`--runs` run directories (completed, failed, interrupted and queued runs, a third of
them in grids of ten, a fifth from Slurm jobs that have ended, some with notes), then times `ls` in this process and counts every
open/stat/scandir whose path lies in the results folder (a wrapper around `open`,
`os.open`, `os.stat`, `os.lstat`, `os.scandir`, `os.listdir`).

Both sides run here, alternating: `ls` as it is, and `ls` with each Run reading its
state.json afresh on every call (`runs.snapshot` disabled), which is how every listing
read before the snapshot existed. Goals: <= 6 operations per run and under 0.5 s for
1,000 runs; the exit status is 1 when a goal is missed.

Usage: python bench/bench_ls.py [--runs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPS_GOAL = 6.0
SECONDS_GOAL = 0.5


def make_results(root: Path, n: int) -> None:
    """`n` run directories as the runner leaves them (config, state, notes for some)."""
    statuses = ["completed", "completed", "completed", "failed", "interrupted", "queued"]
    for i in range(n):
        run_id = f"20260101_{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}_counter_t{i}_{i:06d}"
        path = root / run_id
        (path / "checkpoints").mkdir(parents=True)
        (path / "artifacts").mkdir()
        config = {
            "run_id": run_id,
            "kind": "counter",
            "title": f"t{i}",
            "params": {"units": 20, "seed": i},
            "md5": "x",
            "launcher": {"name": "slurm" if i % 5 == 0 else "local", "processes": 1},
        }
        if i % 3 == 0:
            g = i // 30
            config["group"] = {
                "id": f"g{g:04d}",
                "title": "sweep",
                "axes": {"seed": list(range(10))},
                "coords": {"seed": i % 10},
                "index": (i // 3) % 10,
                "size": 10,
            }
        (path / "config.json").write_text(json.dumps(config))
        status = statuses[i % len(statuses)]
        state = {"status": status, "created": 1.0, "started": 2.0, "ended": 5.0, "records": 20}
        state.update(phase="count", done=20, total=20, attempts=1)
        if status == "completed":
            state["key_metric"] = {"name": "total", "value": i / 7}
        if i % 5 == 0:  # a cluster run whose job has ended (no scheduler query needed)
            state["slurm"] = {"job_id": str(1000 + i), "state": "COMPLETED", "node": "n1"}
        (path / "state.json").write_text(json.dumps(state))
        if i % 10 == 0:
            (path / "notes.json").write_text(json.dumps({"tags": ["keep"], "note": "n"}))


class Counter:
    """Counts file-system calls on paths under `root` while active."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.n = 0
        self._saved: dict[tuple[object, str], object] = {}

    def _wrap(self, owner: object, name: str) -> None:
        original = getattr(owner, name)
        self._saved[(owner, name)] = original

        def counted(path, *args, **kwargs):
            if isinstance(path, str | os.PathLike) and os.fspath(path).startswith(self.root):
                self.n += 1
            return original(path, *args, **kwargs)

        setattr(owner, name, counted)

    def __enter__(self) -> Counter:
        self.n = 0
        self._wrap(builtins, "open")
        for name in ("open", "stat", "lstat", "scandir", "listdir"):
            self._wrap(os, name)
        return self

    def __exit__(self, *exc: object) -> None:
        for (owner, name), original in self._saved.items():
            setattr(owner, name, original)
        self._saved.clear()


@contextlib.contextmanager
def no_snapshot():
    """The listing as it read before: every state() call opens state.json again."""
    from labdeck.backend import runs

    saved = getattr(runs, "snapshot", None)
    if saved is None:  # code from before the snapshot: nothing to disable
        yield
        return

    @contextlib.contextmanager
    def fresh(_runs):
        yield

    runs.snapshot = fresh
    try:
        yield
    finally:
        runs.snapshot = saved


def one_ls(results: Path) -> None:
    from labdeck.backend.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ls", "--results", str(results)]) == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    os.environ["LABDECK_KIND_PATH"] = str(REPO / "tests" / "core" / "kinds")
    os.environ["COLUMNS"] = "200"
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-ls-") as tmp:
        results = Path(tmp) / "results"
        make_results(results, args.runs)
        one_ls(results)  # imports and caches warm, for both sides
        sides = {"ls now": contextlib.nullcontext, "ls re-reading state.json": no_snapshot}
        ops: dict[str, list[float]] = {k: [] for k in sides}
        wall: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(args.rounds):
            for name, ctx in sides.items():
                with ctx(), Counter(results) as counter:
                    t0 = time.perf_counter()
                    one_ls(results)
                    wall[name].append(time.perf_counter() - t0)
                ops[name].append(counter.n / args.runs)
    now, before = "ls now", "ls re-reading state.json"
    for name in sides:
        print(
            f"{name:26s} {statistics.median(ops[name]):6.2f} operations/run   "
            f"{statistics.median(wall[name]):.3f} s for {args.runs} runs (median of {args.rounds})"
        )
    ratio_ops = statistics.median(ops[before]) / statistics.median(ops[now])
    ratio_wall = statistics.median(wall[before]) / statistics.median(wall[now])
    print(f"ratio (before / now): operations {ratio_ops:.2f}x, wall time {ratio_wall:.2f}x")
    ok_ops = statistics.median(ops[now]) <= OPS_GOAL
    ok_wall = args.runs != 1000 or statistics.median(wall[now]) < SECONDS_GOAL
    print(
        f"goals: <= {OPS_GOAL:g} operations/run {'met' if ok_ops else 'MISSED'}; "
        f"under {SECONDS_GOAL} s for 1000 runs {'met' if ok_wall else 'MISSED'}"
    )
    return 0 if ok_ops and ok_wall else 1


if __name__ == "__main__":
    raise SystemExit(main())
