"""GPU: every device's utilisation, memory, temperature and power with a history, and
the GPU memory of each process, this run's own marked (as nvitop does, next to the run).

Without a GPU it says so once and shows the host's CPU and memory the same way.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from labdeck.backend.runs import Run

from .. import fmt
from ..gpuview import DeviceTrack, Snapshot, default_snapshot, process_name, run_pids, sparkline
from ..polling import BackgroundPoll
from ..widgets.footer import PriorityFooter


class GpuScreen(Screen):
    DEFAULT_CSS = """
    GpuScreen #gpu-body { height: 1fr; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("h", "toggle_history", "History"),
        Binding("a", "toggle_all", "All processes"),
    ]

    def __init__(self, run: Run | None = None) -> None:
        super().__init__()
        self.run = run
        self.tracks: dict[str, DeviceTrack] = {}
        self.snapshot: Snapshot | None = None
        self.show_history = True
        self.all_processes = run is None
        self._poller = BackgroundPoll(
            self, self._read, self._apply, "gpu-view", on_error=lambda exc: exc
        )

    @property
    def probe(self) -> Callable[[], Snapshot]:
        return getattr(self.app, "gpu_snapshot", None) or default_snapshot

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="gpu-body"):
            yield Static(id="gpu-devices")
            yield Static(id="gpu-procs")
        yield PriorityFooter()

    def on_mount(self) -> None:
        self.title = "labdeck · devices" + (f" · {self.run.short_id}" if self.run else "")
        self._poller()
        interval = getattr(self.app, "gpu_interval", 2.0)
        if interval:
            self.set_interval(interval, self._poller)

    def _read(self) -> tuple[Snapshot, set[int]]:
        snap = self.probe()
        pids = run_pids(self.run.state(), socket.gethostname()) if self.run else set()
        return snap, pids

    def _apply(self, result) -> None:
        if isinstance(result, Exception):
            self.query_one("#gpu-devices", Static).update(
                Text(f"device probe failed: {result}", style="bold red")
            )
            return
        snap, self.pids = result
        self.snapshot = snap
        for d in snap.devices:
            self.tracks.setdefault(d.device, DeviceTrack(d.device)).add(d)
        self._redraw()

    def _redraw(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        width = self.app.size.width
        spark_w = 12 if width < 100 else 30
        extras = snap.extras if len(snap.extras) == len(snap.devices) else []
        table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
        narrow = width < 100
        for col in ("device", "util", "memory", "°C", "power", *([] if narrow else ["name"])):
            table.add_column(col, no_wrap=True)
        for i, d in enumerate(snap.devices):
            total = float(d.total or 0)
            frac = float(d.used) / total if total else 0.0
            extra = extras[i] if extras else None
            power = "—"
            if extra is not None and extra.power_w is not None:
                power = f"{extra.power_w:.0f}W"
                if extra.power_limit_w:
                    power += f"/{extra.power_limit_w:.0f}W"
            util = f"{d.util:.0f}%" if d.util is not None else "—"
            row = [
                Text(d.device, style="bold"),
                f"{fmt.bar((d.util or 0) / 100, 6 if narrow else 10)} {util}",
                f"{fmt.bar(frac, 6 if narrow else 10)} {fmt.size(d.used)}/{fmt.size(d.total)}",
                f"{d.temperature:.0f}" if d.temperature is not None else "—",
                power,
            ]
            if not narrow:
                row.append(str(d.name))
            table.add_row(*row)
            track = self.tracks.get(d.device)
            if self.show_history and track is not None:
                what = "cpu" if d.source == "host" else "util"
                table.add_row(
                    "",
                    Text(f"{what} {sparkline(list(track.util), spark_w)}", style="cyan"),
                    Text(f"mem {sparkline(list(track.mem), spark_w)}", style="magenta"),
                    "",
                    "",
                    *([] if narrow else [""]),
                )
        head = Text()
        if not snap.has_gpu:
            head.append("no GPU here — ", style="bold")
            head.append(f"{snap.status}\n", style="dim")
        else:
            head.append(f"{snap.status}\n", style="dim")
        self.query_one("#gpu-devices", Static).update(_group(head, table))
        self.query_one("#gpu-procs", Static).update(self._processes(snap))

    def _processes(self, snap: Snapshot) -> Table | Text:
        if not snap.has_gpu:
            if self.run is None:
                return Text("")
            state = self.run.state()
            mine = (
                "running here"
                if self.pids
                else f"not running on this host ({state.get('host', '?')})"
            )
            return Text(f"\n{self.run.short_id}: {mine}", style="dim")
        procs = [p for p in snap.processes if self.all_processes or p.pid in self.pids]
        table = Table(
            title="GPU processes" + ("" if self.all_processes else f" of {self.run.short_id}"),
            title_justify="left",
            box=None,
            expand=True,
            header_style="bold",
        )
        for col in ("pid", "gpu", "memory", "process", ""):
            table.add_column(col, no_wrap=True)
        labels = {i: d.device for i, d in enumerate(snap.devices)}
        for p in sorted(procs, key=lambda p: -(p.used or 0)):
            mine = p.pid in self.pids
            table.add_row(
                str(p.pid),
                labels.get(p.index, f"nvml:{p.index}"),
                fmt.size(p.used) if p.used is not None else "n/a",
                process_name(p.pid),
                Text("◆ this run", style="bold") if mine else "",
            )
        if not procs:
            who = "any process" if self.all_processes else f"{self.run.short_id}'s processes"
            table.add_row("—", "", "", f"no GPU memory held by {who}", "")
        total = sum(p.used or 0 for p in snap.processes if p.pid in self.pids)
        if self.run is not None:
            table.caption = f"{self.run.short_id} holds {fmt.size(total)} of GPU memory"
        return table

    def action_toggle_history(self) -> None:
        self.show_history = not self.show_history
        self._redraw()

    def action_toggle_all(self) -> None:
        self.all_processes = not self.all_processes or self.run is None
        self._redraw()


def _group(head: Text, table: Table):
    from rich.console import Group

    return Group(head, table)
