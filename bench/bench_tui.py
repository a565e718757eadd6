"""Dashboard performance, measured headless with App.run_test.

1. open a run whose events.jsonl holds 1 000 000 events (child processes, alternating):
   time to a complete Monitor (history folded) against the same Monitor folding every
   event, checked to show the same contents, plotted series included; first-frame
   latency as its own figure (the first screen update written to the terminal once the
   history's tail is on the widgets); every spike of the exact series (every event, no
   downsampling) must be among the points labdeck draws;
2. a writer appends 1 000 events/s to a watched run: key-press latency (p95) and
   the app's own CPU share;
3. idle over 200 runs: CPU share;
4. the workspace: 1 000 runs in the Runs table (first frame, and one refresh after a
   run changed, parameter columns included) and 8 runs overlaid (first complete grid,
   and a page key's frame: as used, after a moment on the page, and from nothing with
   the chart cache emptied).

Exits non-zero, naming the figure, when a goal is missed.

Usage: python bench/bench_tui.py [--events N] [--seconds S] [--only workspace]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "tui"))

import fixture_runs  # noqa: E402
from figures import Figures  # noqa: E402

from labdeck.backend.jsonio import dumps_line, write_json_atomic  # noqa: E402
from labdeck.backend.runs import create_run_dir  # noqa: E402


def host_probe():
    from labdeck.backend import gpu

    return gpu.nvml_status(), gpu.probe_all()


SPIKES = 25  # planted loss spikes, spread over the file (most far before the tail)


def spike_steps(n: int) -> set[int]:
    """Steps (multiples of 10 plus 8: metric events) that carry a planted loss spike."""
    return {(k * n // SPIKES) // 10 * 10 + 8 for k in range(SPIKES)} - {8}


def train_loss(i: int, spikes: set[int]) -> float:
    return (3.0 + (i % 7) / 7) if i in spikes else 1 / (1 + i / 1e5)


def write_big_run(results: Path, n: int) -> Path:
    """A kt-like run with n events: progress, memory, step metrics, per-epoch metrics, logs;
    the training loss carries planted spikes."""
    run_id = "20260101_100000_kt_big_777777"
    run = create_run_dir(results, run_id, fixture_runs.config("kt", "big", run_id, {"epochs": 100}))
    t0 = fixture_runs.T0
    per_epoch = max(1, n // 100)
    spikes = spike_steps(n)
    with open(run.events_path, "w", encoding="utf-8") as fh:
        fh.write(
            dumps_line({"t": t0, "seq": 0, "type": "phase", "name": "train", "total": n}) + "\n"
        )
        for i in range(1, n):
            t = t0 + i * 0.01
            k = i % 10
            if k < 6:
                ev = {"t": t, "seq": i, "type": "progress", "phase": "train", "done": i, "total": n}
            elif k < 8:
                ev = {
                    "t": t,
                    "seq": i,
                    "type": "memory",
                    "devices": [
                        {
                            "device": "cuda:0",
                            "name": "H100",
                            "used": 4e10 + (i % 1000) * 1e7,
                            "total": 8e10,
                            "util": 80.0,
                            "source": "nvml",
                        }
                    ],
                }
            elif k == 8:
                ev = {
                    "t": t,
                    "seq": i,
                    "type": "metric",
                    "name": "train_loss",
                    "value": train_loss(i, spikes),
                    "step": i,
                }
            else:
                ev = {"t": t, "seq": i, "type": "log", "level": "info", "message": f"step {i}"}
            if i % per_epoch == 0:
                ev = {
                    "t": t,
                    "seq": i,
                    "type": "metric",
                    "name": "val_auc",
                    "value": 0.5 + i / (4 * n),
                    "epoch": i // per_epoch,
                }
            fh.write(dumps_line(ev) + "\n")
    write_json_atomic(
        run.path / "state.json", {"status": "completed", "started": t0, "ended": t0 + n * 0.01}
    )
    return run.path


# ----------------------------------------------------------------------------- 1. open


def monitor_digest(view) -> dict:
    """What the Monitor shows that must not depend on how the file was read: the phase
    counters, each device's latest memory, the per-epoch table, the metric names with
    their latest values, checkpoints, the last event folded and the run status."""
    return {
        "phases": {n: [p.done, p.total] for n, p in sorted(view.phases.items())},
        "memory": {k: d.used for k, d in sorted(view.devices.items())},
        "table": sorted([list(k), sorted(v.items())] for k, v in view.table.items()),
        "metrics": {k: s.last for k, s in sorted(view.metrics.items())},
        "checkpoints": len(view.checkpoints),
        "plotted": plotted(view),
        "last_seq": view.last_seq,
        "status": view.status,
    }


def plotted(view) -> dict:
    """The points the Monitor draws for each metric (thinned to the plot's limit, as
    drawn) and each device's memory history."""
    from labdeck.tui.plotting import curve_of
    from labdeck.tui.widgets.series_plot import thin

    out = {}
    for name in view.series_names():
        curve, _ = curve_of(view, name, name, "native", 0.0)
        if curve is not None:
            out[name] = [list(p) for p in zip(*thin(curve.xs, curve.ys), strict=True)]
    for key, dev in view.devices.items():
        out[f"memory:{key}"] = [list(p) for p in zip(*dev.history.points(), strict=True)]
    return out


def exact_spikes(big: Path, window: int = 25, jump: float = 0.5) -> list[tuple[float, float]]:
    """Spikes of the exact train_loss series (every event, no downsampling): points more
    than `jump` away from the median of their `window` neighbours on each side."""
    xs, ys = [], []
    with open(big / "events.jsonl", "rb") as fh:
        for line in fh:
            if b'"train_loss"' in line:
                ev = json.loads(line)
                xs.append(float(ev["step"]))
                ys.append(float(ev["value"]))
    out = []
    for i, y in enumerate(ys):
        around = sorted(ys[max(0, i - window) : i] + ys[i + 1 : i + 1 + window])
        if around and abs(y - around[len(around) // 2]) > jump:
            out.append((xs[i], y))
    return out


async def _open(run_dir: Path, full: bool) -> dict:
    """Open the Monitor on `run_dir` and wait until it is complete (history folded).

    labdeck's Monitor reads the tail first (first frame), then skims the older bytes;
    the full-fold Monitor is the same screen with a view that folds every event
    (what a dashboard without the tail/skim split does). Same screen, same completion
    condition, same digest: equal work."""
    from labdeck.backend.runs import Run
    from labdeck.tui.app import LabdeckApp
    from labdeck.tui.data import RunView
    from labdeck.tui.screens.monitor import MonitorScreen

    app = LabdeckApp(run_dir.parent, gpu_probe=host_probe, poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        screen = MonitorScreen(Run(run_dir))
        if full:
            screen.view = RunView(Run(run_dir), tail_bytes=1 << 40)
        # The first frame: the first screen update written to the terminal after the
        # history's tail is on the widgets. (pilot.pause() waits for the whole process
        # to go idle, up to a second, so it would count the skim thread's parsing too.)
        painted: list[float] = []
        write = app._display

        def display(shown, renderable) -> None:
            write(shown, renderable)
            if shown is screen and screen._loaded and renderable is not None:
                painted.append(time.perf_counter())

        app._display = display
        app.push_screen(screen)
        while not painted:
            await asyncio.sleep(0.005)
        first = painted[0] - t0
        while screen.view.needs_skim:
            await asyncio.sleep(0.005)
        await pilot.pause()
        complete = time.perf_counter() - t0
        digest = monitor_digest(screen.view)
        events = screen.view.events_seen
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "first_frame": first,
        "complete": complete,
        "events_folded": events,
        "peak_mb": peak,
        "digest": digest,
    }


def child_open(run_dir: str, full: bool) -> None:
    print(json.dumps(asyncio.run(_open(Path(run_dir), full))))


def measure_open(run_dir: Path, full: bool) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child-open", str(run_dir)] + (["--full"] if full else []),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_open(big: Path, rounds: int, figures: Figures) -> None:
    """Both Monitors to completion, alternating which goes first; medians compared."""
    runs: dict[str, list[dict]] = {"labdeck": [], "full": []}
    for r in range(rounds):
        for side in ("labdeck", "full") if r % 2 == 0 else ("full", "labdeck"):
            runs[side].append(measure_open(big, full=side == "full"))
    ours, full = runs["labdeck"], runs["full"]
    same = ours[-1]["digest"] == full[-1]["digest"]
    if not same:
        for key in full[-1]["digest"]:
            if ours[-1]["digest"][key] != full[-1]["digest"][key]:
                print(f"  differs: {key}")
    med = statistics.median
    lab_c, full_c = med(o["complete"] for o in ours), med(o["complete"] for o in full)
    first = med(o["first_frame"] for o in ours)
    print(
        f"open {ours[-1]['digest']['last_seq'] + 1} events, complete Monitor (median of {rounds}): labdeck {lab_c:.2f}s peak "
        f"{max(o['peak_mb'] for o in ours):.0f} MB ({ours[-1]['events_folded']} events folded) | "
        f"full fold {full_c:.2f}s peak {max(o['peak_mb'] for o in full):.0f} MB "
        f"({full[-1]['events_folded']} events folded); same screen contents: {same}"
    )
    n = ours[-1]["digest"]["last_seq"] + 1
    figures.add("open_first_frame", first, "< 1", unit="seconds",
                labdeck=f"{first:.2f}s to the first frame",
                baseline=f"{med(o['first_frame'] for o in full):.2f}s full-fold Monitor",
                note=f"{n} events; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    figures.add("open_complete", full_c / lab_c, ">= 1", labdeck=f"{lab_c:.2f}s",
                baseline=f"{full_c:.2f}s full fold", note="same contents: " + str(same))  # fmt: skip
    figures.add("open_same_contents", float(same), ">= 1", unit="equal",
                note="every panel, table and plotted series of the two Monitors")  # fmt: skip
    spikes = exact_spikes(big)
    drawn = {tuple(p) for p in ours[-1]["digest"]["plotted"].get("train_loss", [])}
    missed = [p for p in spikes if p not in drawn]
    figures.add("spikes_drawn", (len(spikes) - len(missed)) / max(1, len(spikes)), ">= 1",
                unit="fraction", labdeck=f"{len(spikes) - len(missed)}/{len(spikes)} spikes",
                note=f"among the {len(drawn)} points labdeck draws")  # fmt: skip


# ----------------------------------------------------------------------------- 2. live writer

WRITER = r"""
import json, sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
seq = 10**6
t_end = time.time() + seconds
with open(path, "a") as fh:
    while time.time() < t_end:
        tick = time.time()
        for _ in range(int(rate / 20)):
            seq += 1
            kind = seq % 4
            if kind == 0:
                ev = {"t": tick, "seq": seq, "type": "memory", "devices": [{"device": "cuda:0", "used": 3e10, "total": 8e10, "source": "nvml"}]}
            elif kind == 1:
                ev = {"t": tick, "seq": seq, "type": "metric", "name": "train_loss", "value": 1.0 / (seq % 977 + 1), "step": seq}
            elif kind == 2:
                ev = {"t": tick, "seq": seq, "type": "log", "level": "info", "message": f"unit {seq}"}
            else:
                ev = {"t": tick, "seq": seq, "type": "progress", "phase": "train", "done": seq % 10**6, "total": 10**6}
            fh.write(json.dumps(ev, separators=(",", ":")) + "\n")
        fh.flush()
        time.sleep(max(0.0, 0.05 - (time.time() - tick)))
"""


async def _live(run_dir: Path, seconds: float, rate: float) -> dict:
    from labdeck.backend.runs import Run
    from labdeck.tui.app import LabdeckApp

    app = LabdeckApp(run_dir.parent, gpu_probe=host_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_monitor(Run(run_dir))
        await pilot.pause(1.0)
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(run_dir / "events.jsonl"),
                str(rate),
                str(seconds + 5),
            ]
        )
        await pilot.pause(1.0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds / 2)
        cpu_watch = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        latencies = []
        tabs = app.screen.query_one("TabbedContent")
        for i in range(40):
            key, want = (("2", "tab-metrics"), ("3", "tab-log"), ("1", "tab-plots"))[i % 3]
            t = time.perf_counter()
            # From the key entering the app to the screen having switched tab (the
            # next refresh paints it); pilot.press's own settling wait is not counted.
            press = asyncio.create_task(pilot.press(key))
            while tabs.active != want:
                await asyncio.sleep(0.001)
            latencies.append(time.perf_counter() - t)
            await press
            await asyncio.sleep(seconds / 2 / 40)
        events = app.screen.view.events_seen
        writer.terminate()
        writer.wait()
    latencies.sort()
    return {
        "p95_ms": 1000 * latencies[int(0.95 * len(latencies)) - 1],
        "median_ms": 1000 * latencies[len(latencies) // 2],
        "cpu_share": cpu_watch,
        "events_seen": events,
    }


# ----------------------------------------------------------------------------- 3. idle


async def _idle(results: Path, seconds: float) -> dict:
    from labdeck.tui.app import LabdeckApp

    app = LabdeckApp(results, gpu_probe=host_probe)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(2.0)
        rows = app.screen.query_one("#runs").row_count
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    return {"cpu_share": share, "rows": rows}


# ----------------------------------------------------------------------------- 4. workspace


def write_many(results: Path, n: int) -> list[str]:
    """n finished kt runs whose lr and seed vary (two parameter columns)."""
    ids = []
    for i in range(n):
        rid = f"20260101_{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}_kt_many_{i:06d}"
        fixture_runs.kt_run(results, rid, "completed", 12, None, fixture_runs.T0 + i)
        cfg_path = results / rid / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["params"] = {**cfg["params"], "lr": (1e-3, 3e-3, 1e-2)[i % 3], "seed": i % 5}
        cfg_path.write_text(json.dumps(cfg))
        ids.append(rid)
    return ids


async def _table(results: Path) -> dict:
    from labdeck.tui.app import LabdeckApp

    t0 = time.perf_counter()
    app = LabdeckApp(results, gpu_probe=host_probe, poll_interval=0, gpu_interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        table = None
        while table is None or table.row_count == 0:
            await asyncio.sleep(0.005)
            screen = app.screen
            table = screen.query_one("#runs") if screen.query("#runs") else None
        await pilot.pause()
        first = time.perf_counter() - t0
        rows = table.row_count
        columns = [str(c.label) for c in table.columns.values()]
        # what the parameter columns cost: the whole table rebuilt with and without them
        screen = app.screen
        rebuild = {}
        # the fastest of four alternating rebuilds per side, each after a collection: a
        # single rebuild on 2 busy cores swung the ratio from 1.15 to 1.64
        for side in ("with", "without") * 4:
            screen._col_spec = None if side == "with" else "-lr,-seed"
            screen._param_cols, screen._shown = [], []
            gc.collect()
            t = time.perf_counter()
            screen._refresh_model((set(), set(), set()))
            await pilot.pause()
            rebuild.setdefault(side, []).append(time.perf_counter() - t)
        screen._col_spec = None
        screen._param_cols, screen._shown = [], []
        screen._refresh_model((set(), set(), set()))
        await pilot.pause()
        # one run changes on disk: rescan and repaint, as the 1 s poll does
        times, scans = [], []
        for k in range(10):
            victim = results / sorted(os.listdir(results))[k]
            state = json.loads((victim / "state.json").read_text())
            state["key_metric"] = {"name": "val_auc", "value": 0.5 + k / 100}
            write_json_atomic(victim / "state.json", state)
            t = time.perf_counter()
            delta = screen.model.refresh()  # the scan: a thread's work in the app
            scans.append(time.perf_counter() - t)
            screen._refresh_model(delta)
            await pilot.pause()
            times.append(time.perf_counter() - t)
    return {
        "first": first,
        "refresh": statistics.median(times),
        "scan": statistics.median(scans),
        "rebuild_with": min(rebuild["with"]),
        "rebuild_without": min(rebuild["without"]),
        "rows": rows,
        "cols": columns,
    }


async def _overlay(results: Path, ids: list[str]) -> dict:
    from labdeck.backend.runs import Run
    from labdeck.tui.app import LabdeckApp

    app = LabdeckApp(
        results, gpu_probe=host_probe, poll_interval=0, gpu_interval=0, monitor_interval=0
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        app.open_overlay([Run(results / r) for r in ids], ids[0])
        screen = app.screen
        while not getattr(screen, "_loaded", False):
            await asyncio.sleep(0.005)
        await pilot.pause()
        first = time.perf_counter() - t0
        from labdeck.tui.widgets.overlay_chart import OverlayChart

        turns, cold = [], []
        for i in range(10):
            # as a user turns pages: a moment on this page (the next one is drawn off
            # screen meanwhile), then the key; only the key's frame is timed
            await pilot.pause(0.4)
            t = time.perf_counter()
            screen.action_page(1 if i % 2 == 0 else -1)
            await pilot.pause()
            turns.append(time.perf_counter() - t)
        for i in range(6):
            # nothing drawn before and no prefetch: every chart of the page built now
            await pilot.pause(0.1)
            OverlayChart._drawn.clear()
            screen._generation += 1
            t = time.perf_counter()
            screen.action_page(1 if i % 2 == 0 else -1)
            await pilot.pause()
            cold.append(time.perf_counter() - t)
        charts = len(screen.names())
    return {
        "first": first,
        "refresh": statistics.median(turns),
        "cold": statistics.median(cold),
        "metrics": charts,
    }


def bench_workspace(tmp: Path, figures: Figures) -> None:
    """The Runs table with 1,000 runs and the overlay of 8."""
    many = tmp / "many"
    t = time.perf_counter()
    ids = write_many(many, 1000)
    print(f"wrote 1000 runs in {time.perf_counter() - t:.1f}s")
    table = asyncio.run(_table(many))
    print(
        f"runs table, {table['rows']} rows, columns {' | '.join(c.strip() for c in table['cols'])}: "
        f"first frame {table['first']:.2f}s, refresh after one change {1000 * table['refresh']:.0f} ms "
        f"(of which the scan of 1000 run folders, done off the UI thread: {1000 * table['scan']:.0f} ms)"
    )
    print(
        f"table rebuild of 1000 rows: with 2 parameter columns {1000 * table['rebuild_with']:.0f} ms, "
        f"without {1000 * table['rebuild_without']:.0f} ms"
    )
    figures.add("param_columns_cost", table["rebuild_with"] / table["rebuild_without"],
                "<= 1.3", labdeck=f"{1000 * table['rebuild_with']:.0f} ms with",
                baseline=f"{1000 * table['rebuild_without']:.0f} ms without")  # fmt: skip
    load = f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    figures.add("table_1000_first_frame", table["first"], "< 2", unit="seconds", note=load)
    figures.add("table_1000_refresh", 1000 * table["refresh"], "< 100", unit="ms",
                note=f"scan {1000 * table['scan']:.0f} ms of it")  # fmt: skip
    over = asyncio.run(_overlay(many, ids[:8]))
    print(
        f"overlay of 8 runs ({over['metrics']} metrics): first complete grid {over['first']:.2f}s, "
        f"page turn {1000 * over['refresh']:.0f} ms, a page drawn from nothing "
        f"(cache emptied, no prefetch) {1000 * over['cold']:.0f} ms"
    )
    figures.add("overlay_8_first_frame", over["first"], "< 2", unit="seconds")
    figures.add("overlay_8_refresh", 1000 * over["refresh"], "< 100", unit="ms",
                note="page turn after a moment on the page")  # fmt: skip
    figures.add("overlay_8_cold_page", 1000 * over["cold"], unit="ms",
                note="chart cache emptied, no prefetch")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--child-open")
    p.add_argument("--full", action="store_true")
    p.add_argument("--rounds", type=int, default=2, help="opens per side (alternating order)")
    p.add_argument("--only", choices=["workspace"], help="run only this part")
    args = p.parse_args()
    if args.child_open:
        child_open(args.child_open, args.full)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_tui_"))
    figures = Figures("bench_tui")
    if args.only == "workspace":
        try:
            bench_workspace(tmp, figures)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        figures.finish()
        return
    try:
        results = tmp / "results"
        t = time.perf_counter()
        big = write_big_run(results, args.events)
        size_mb = (big / "events.jsonl").stat().st_size / 2**20
        print(f"wrote {args.events} events ({size_mb:.0f} MiB) in {time.perf_counter() - t:.1f}s")
        bench_open(big, args.rounds, figures)

        live_dir = results / "20260101_110000_kt_live_888888"
        fixture_runs.kt_run(results, live_dir.name, "running", 3, os.getpid(), fixture_runs.T0)
        live = asyncio.run(_live(live_dir, args.seconds, 1000.0))
        print(
            f"live 1000 ev/s: key p95 {live['p95_ms']:.1f} ms, median {live['median_ms']:.1f} ms; "
            f"app CPU {100 * live['cpu_share']:.1f}% of one core ({live['events_seen']} events seen)"
        )
        figures.add("key_latency_under_writer", live["p95_ms"], "< 100", unit="ms",
                    note="p95 of key presses while 1,000 events/s arrive")  # fmt: skip
        figures.add("cpu_under_writer", 100 * live["cpu_share"], "< 25", unit="percent",
                    note="of one core")  # fmt: skip

        idle_results = tmp / "idle"
        idle_results.mkdir()
        for i in range(200):
            status = ("completed", "interrupted", "failed")[i % 3]
            fixture_runs.kt_run(
                idle_results,
                f"20260101_{i // 60:02d}{i % 60:02d}00_kt_idle_{i:06d}",
                status,
                2,
                None,
                fixture_runs.T0 + i,
            )
        idle = asyncio.run(_idle(idle_results, args.seconds))
        print(
            f"idle 200 runs ({idle['rows']} rows): app CPU {100 * idle['cpu_share']:.2f}% of one core"
        )
        figures.add("idle_200_runs", 100 * idle["cpu_share"], "< 5", unit="percent",
                    note="of one core")  # fmt: skip
        bench_workspace(tmp, figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures.finish()


if __name__ == "__main__":
    main()
