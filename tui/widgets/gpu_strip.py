"""The device strip at the top of the Runs screen (like nvitop's header).

It probes through `labdeck.backend.gpu` (NVML, then torch if already loaded, then host
memory), in a thread so a slow driver call never stalls a key press.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.markup import escape
from textual.widgets import Static

from .. import fmt
from ..polling import BackgroundPoll

Probe = Callable[[], tuple[str, list[Any]]]


def default_probe() -> tuple[str, list[Any]]:
    from labdeck.backend import gpu

    return gpu.nvml_status(), gpu.probe_all()


def _level(fraction: float) -> str:
    return "$error" if fraction > 0.9 else "$warning" if fraction > 0.7 else "$success"


def device_line(d: Any, bar_width: int = 20) -> str:
    """One device as markup: name, memory bar, used/total, utilisation, temperature, source.

    Narrow terminals (bar_width < 20) get the short form on one line: the device,
    its memory and its utilisation, each labelled."""
    total = float(getattr(d, "total", 0) or 0)
    used = float(getattr(d, "used", 0) or 0)
    frac = used / total if total else 0.0
    util = getattr(d, "util", None)
    temp = getattr(d, "temperature", None)
    what = "cpu" if getattr(d, "source", "") == "host" else "util"
    usage = f"{what} {util:.0f}%" if util is not None else f"{what} —"
    mem = f"mem {fmt.size(used)}/{fmt.size(total)} ({frac * 100:.0f}%)"
    if bar_width < 20:
        return f"[b]{escape(str(d.device))}[/b] [{_level(frac)}]{fmt.bar(frac, bar_width)}[/] {mem} {usage}"
    name = str(d.name or "")
    if len(name) > 28:
        name = name[:27] + "…"
    parts = [
        f"[b]{escape(str(d.device))}[/b] {escape(name):<28}",
        f"[{_level(frac)}]{fmt.bar(frac, bar_width)}[/] {mem}",
        usage,
        f"{temp:.0f}°C" if temp is not None else "",
        f"[dim]{escape(str(d.source))}[/dim]",
    ]
    return "  ".join(p for p in parts if p)


class GpuStrip(Static):
    """Per-device memory used/total, utilisation and temperature, refreshed every 2 s."""

    DEFAULT_CSS = """
    GpuStrip { height: auto; padding: 0 1; background: $boost; }
    """

    def __init__(self, probe: Probe | None = None, interval: float = 2.0, **kw: Any) -> None:
        super().__init__("probing devices…", **kw)
        self._probe = probe or default_probe
        self._interval = interval
        # a broken driver must not take the dashboard down: its error is shown instead
        self._tick = BackgroundPoll(
            self,
            self._read,
            self.update,
            "gpu-probe",
            on_error=lambda exc: f"[$error]device probe failed: {escape(str(exc))}[/]",
        )

    def on_mount(self) -> None:
        self._tick()
        if self._interval > 0:
            self.set_interval(self._interval, self._tick)

    def _read(self) -> str:
        status, devices = self._probe()
        return self.render_devices(status, devices)

    def render_devices(self, status: str, devices: list[Any]) -> str:
        width = 4 if self.app.size.width < 70 else 12 if self.app.size.width < 100 else 20
        lines = [device_line(d, width) for d in devices]
        if not any(getattr(d, "source", "") == "nvml" for d in devices):
            lines.insert(0, f"[dim]{escape(status)}[/dim]")
        return "\n".join(lines)
