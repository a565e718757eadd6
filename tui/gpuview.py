"""The GPU view's model: per-device history and the run's own processes' GPU memory.

Readings come from backend/gpu.py (memory, utilisation, temperature) and
backend/gpuprocs.py (power, per-process memory), both NVML; neither imports torch.
History is a bounded ring per device, so the view costs the same after a week.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

HISTORY = 120  # samples per device (4 minutes at the default 2 s)
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int, top: float = 100.0) -> str:
    """The last `width` values (0..top) as block characters."""
    vals = values[-width:]
    if not vals:
        return ""
    return "".join(SPARK[min(7, max(0, int(v / top * 7.999)))] if top else SPARK[0] for v in vals)


@dataclass
class DeviceTrack:
    device: str
    util: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    mem: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # percent of total

    def add(self, reading: Any) -> None:
        util = getattr(reading, "util", None)
        self.util.append(float(util) if util is not None else 0.0)
        total = float(getattr(reading, "total", 0) or 0)
        self.mem.append(100.0 * float(getattr(reading, "used", 0) or 0) / total if total else 0.0)


@dataclass
class Snapshot:
    """One probe: the status line, devices, their extras (power) and GPU processes."""

    status: str
    devices: list[Any]
    extras: list[Any] = field(default_factory=list)
    processes: list[Any] = field(default_factory=list)

    @property
    def has_gpu(self) -> bool:
        return any(getattr(d, "source", "") != "host" for d in self.devices)


def run_pids(state: dict[str, Any], this_host: str) -> set[int]:
    """The run's runner and its children (torchrun ranks, data workers), on this host."""
    pid = state.get("pid")
    if not pid or state.get("host") != this_host:
        return set()
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return {proc.pid, *(c.pid for c in proc.children(recursive=True))}
    except (psutil.Error, OSError):
        return set()


def process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return "?"


def default_snapshot() -> Snapshot:
    from labdeck.backend import gpu, gpuprocs

    return Snapshot(
        gpu.nvml_status(), gpu.probe_all(), gpuprocs.device_extras(), gpuprocs.processes()
    )
