"""What nvitop shows beyond memory: power, and which processes hold memory on each GPU.

Read through the same once-initialised NVML as backend/gpu.py (never torch), so the
dashboard can show a run's own processes' GPU memory next to the device totals. On a
machine without NVML every function returns nothing, and callers say so once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gpu import _NVML


@dataclass(frozen=True)
class DeviceExtra:
    """Readings of one GPU besides its memory: power draw and limit (W), fan (%)."""

    index: int  # NVML index
    name: str
    power_w: float | None
    power_limit_w: float | None
    fan: float | None


@dataclass(frozen=True)
class GpuProcess:
    """Memory one process holds on one GPU (NVML's per-process accounting)."""

    index: int  # NVML index
    pid: int
    used: int | None  # bytes; None where the driver does not say (some containers)


def _try(fn, *args):
    import pynvml

    try:
        return fn(*args)
    except pynvml.NVMLError:
        return None


def device_extras() -> list[DeviceExtra]:
    if not _NVML.ensure():
        return []
    import pynvml

    out = []
    for idx, handle, name in _NVML.handles:
        power = _try(pynvml.nvmlDeviceGetPowerUsage, handle)
        limit = _try(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        fan = _try(pynvml.nvmlDeviceGetFanSpeed, handle)
        out.append(
            DeviceExtra(
                idx,
                name,
                power / 1000 if power is not None else None,
                limit / 1000 if limit is not None else None,
                float(fan) if fan is not None else None,
            )
        )
    return out


def processes() -> list[GpuProcess]:
    """Every compute (and graphics) process on every GPU NVML sees."""
    if not _NVML.ensure():
        return []
    import pynvml

    out = []
    for idx, handle, _ in _NVML.handles:
        seen = set()
        for getter in (
            pynvml.nvmlDeviceGetComputeRunningProcesses,
            pynvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for p in _try(getter, handle) or []:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                out.append(GpuProcess(idx, int(p.pid), int(used) if used is not None else None))
    return out
