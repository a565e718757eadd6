"""Memory probes: what the dashboard strip, the runner's sampler and the batch controller read.

Sources, best first, each reading labelled with where it came from:
- `nvml`: NVIDIA's management library (module `pynvml`, distribution nvidia-ml-py). It sees
  every GPU on the machine, including memory held by other processes, and is cheap once
  initialised, so it is initialised once per process and its handles are cached.
- `torch`: `torch.cuda.mem_get_info` when NVML is missing but torch has a CUDA device (a
  container without the NVML library, a ROCm build). Used only when torch is already
  imported, so the dashboard never pays torch's import time just to draw a memory bar.
- `host`: system memory via psutil on machines without a GPU, so the same strip and the
  same batch policy work on a laptop.

Callers sample this every couple of seconds; nothing here re-initialises per call.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psutil

Source = Literal["nvml", "torch", "host"]


@dataclass(frozen=True)
class DeviceMemory:
    """One device's memory reading at one moment (bytes)."""

    device: str  # "cuda:0", "nvml:3" (a GPU hidden by CUDA_VISIBLE_DEVICES), "cpu"
    name: str
    used: int
    total: int
    util: float | None  # percent busy (GPU compute or host CPU), when the source knows it
    temperature: float | None  # degrees Celsius, when the source knows it
    source: Source

    @property
    def fraction(self) -> float:
        """Used share of total in [0, 1]; what the batch thresholds compare against."""
        return self.used / self.total if self.total > 0 else 0.0

    def as_event(self) -> dict[str, Any]:
        """The per-device entry of a `memory` event (JSON-ready)."""
        out = asdict(self)
        out["fraction"] = round(self.fraction, 4)
        return out


class _Nvml:
    """NVML initialised at most once per process; a failure is remembered, not retried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self.error: str | None = None
        self.handles: list[tuple[int, Any, str]] = []  # (nvml index, handle, name)
        self.init_calls = 0

    def ensure(self) -> bool:
        with self._lock:
            if not self._tried:
                self._tried = True
                self._init()
            return self.error is None

    def _init(self) -> None:
        try:
            import pynvml
        except ImportError as exc:  # the dependency is declared, but keep the fallback honest
            self.error = f"pynvml not importable ({exc})"
            return
        self.init_calls += 1
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            for i in range(count):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
                self.handles.append((i, handle, name))
        except pynvml.NVMLError as exc:
            self.error = str(exc) or type(exc).__name__
            self.handles = []
            return
        if not self.handles:
            self.error = "driver loaded but reports 0 devices"


_NVML = _Nvml()


def _visible_order(nvml_count: int, uuids: list[str]) -> dict[int, int]:
    """NVML index → CUDA ordinal, honouring CUDA_VISIBLE_DEVICES (indices or UUID prefixes).

    NVML numbers GPUs in PCI order and ignores CUDA_VISIBLE_DEVICES; the model runs on a
    CUDA ordinal. Mapping one to the other is what lets `probe_for("cuda:0")` read the GPU
    the model is actually on. (With CUDA_DEVICE_ORDER unset, CUDA may order GPUs of mixed
    models differently from PCI order; set CUDA_DEVICE_ORDER=PCI_BUS_ID on such machines.)
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return {i: i for i in range(nvml_count)}
    mapping: dict[int, int] = {}
    for ordinal, token in enumerate(t.strip() for t in env.split(",") if t.strip()):
        if token.isdigit():
            idx = int(token)
            if not 0 <= idx < nvml_count:
                break  # CUDA stops at the first invalid entry too
        else:
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(token)]
            if len(matches) != 1:
                break
            idx = matches[0]
        if idx in mapping:
            break
        mapping[idx] = ordinal
    return mapping


def _nvml_readings() -> list[DeviceMemory]:
    import pynvml

    uuids = []
    for _, handle, _ in _NVML.handles:
        try:
            u = pynvml.nvmlDeviceGetUUID(handle)
            uuids.append(u.decode() if isinstance(u, bytes) else str(u))
        except pynvml.NVMLError:
            uuids.append("")
    order = _visible_order(len(_NVML.handles), uuids)
    out = []
    for idx, handle, name in _NVML.handles:
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            util: float | None = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except pynvml.NVMLError:
            util = None
        try:
            temp: float | None = float(
                pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            )
        except pynvml.NVMLError:
            temp = None
        label = f"cuda:{order[idx]}" if idx in order else f"nvml:{idx}"
        out.append(DeviceMemory(label, name, int(mem.used), int(mem.total), util, temp, "nvml"))
    return out


def _torch_cuda() -> Any | None:
    """torch.cuda if torch is already loaded and sees a device; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not break a memory bar
        return None


def _torch_readings(cuda: Any) -> list[DeviceMemory]:
    out = []
    for i in range(cuda.device_count()):
        free, total = cuda.mem_get_info(i)
        out.append(
            DeviceMemory(
                f"cuda:{i}",
                cuda.get_device_name(i),
                int(total - free),
                int(total),
                None,
                None,
                "torch",
            )
        )
    return out


def _host_reading() -> DeviceMemory:
    vm = psutil.virtual_memory()
    # `available` accounts for reclaimable page cache; total - available is what a new
    # allocation actually competes with.
    used = int(vm.total - vm.available)
    util = psutil.cpu_percent(interval=None)  # non-blocking: CPU share since the last call
    return DeviceMemory(
        "cpu", f"host memory ({psutil.cpu_count()} CPUs)", used, int(vm.total), util, None, "host"
    )


def probe_all() -> list[DeviceMemory]:
    """Every accelerator's reading, or the host's when there is none."""
    if _NVML.ensure():
        try:
            return _nvml_readings()
        except Exception:  # a GPU fell off the bus mid-run: keep reporting something true
            pass
    cuda = _torch_cuda()
    if cuda is not None:
        return _torch_readings(cuda)
    return [_host_reading()]


def probe_for(device: str) -> DeviceMemory:
    """The reading that bounds a model placed on `device` ("cuda:1", "cuda", "cpu", "auto").

    A CUDA device reads its own GPU; anything else (cpu, mps, a device_map that spans
    devices) falls back to the fullest GPU, or to host memory when there is no GPU.
    """
    readings = probe_all()
    device = "cuda:0" if device == "cuda" else device
    for r in readings:
        if r.device == device:
            return r
    gpus = [r for r in readings if r.source != "host"]
    if device != "cpu" and gpus:
        return max(gpus, key=lambda r: r.fraction)
    hosts = [r for r in readings if r.source == "host"]
    return hosts[0] if hosts else _host_reading()


class ProcessMemory:
    """This process's memory on one CUDA device: what the batch controller decides on.

    NVML's "used" counts every process and PyTorch's cache, so a policy driven by it
    sees its own freed-but-cached blocks as pressure and never grows back. Here our own
    use comes from the caching allocator (`memory_allocated`, `max_memory_allocated`
    since `reset_peak`, `memory_reserved`), and only what *other* processes hold comes
    from the device-wide reading: device used (NVML, else the driver's free/total)
    minus our reserved memory (our CUDA context counts as "others": a safe margin).

    `cuda` is the `torch.cuda` module and `device_used` returns (used, total) bytes for
    the device; both are parameters only so a simulated device can stand in for them.
    """

    def __init__(
        self,
        device: str,
        *,
        cuda: Any = None,
        device_used: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        if cuda is None:
            import torch

            cuda = torch.cuda
        self.device = "cuda:0" if device == "cuda" else device
        self.index = int(self.device.split(":")[1]) if ":" in self.device else 0
        self._cuda = cuda
        self._device_used = device_used or self._nvml_or_driver

    def _nvml_or_driver(self) -> tuple[int, int]:
        reading = probe_for(self.device)
        if reading.device == self.device and reading.source != "host":
            return reading.used, reading.total
        free, total = self._cuda.mem_get_info(self.index)
        return int(total - free), int(total)

    def total(self) -> int:
        return self._device_used()[1]

    def allocated(self) -> int:
        return int(self._cuda.memory_allocated(self.index))

    def peak(self) -> int:
        return int(self._cuda.max_memory_allocated(self.index))

    def reserved(self) -> int:
        return int(self._cuda.memory_reserved(self.index))

    def others(self) -> int:
        used, _ = self._device_used()
        return max(0, used - self.reserved())

    def reset_peak(self) -> None:
        self._cuda.reset_peak_memory_stats(self.index)

    def empty_cache(self) -> None:
        self._cuda.empty_cache()


def process_memory(device: str) -> ProcessMemory | None:
    """Readings for the batch controller where the model lives on one CUDA device, else None
    (the CPU and multi-device maps use the coarse `memory_fraction_probe`)."""
    cuda = _torch_cuda()
    if cuda is None or not (device == "cuda" or device.startswith("cuda:")):
        return None
    return ProcessMemory(device, cuda=cuda)


def memory_fraction_probe(device: str) -> Callable[[], float | None]:
    """A zero-argument probe for `BatchController`: the used fraction where the model lives."""

    def probe() -> float | None:
        return probe_for(device).fraction

    return probe


def batch_readings(device: str) -> dict[str, Any]:
    """`BatchController(**batch_readings(device), ...)`: what the batch policy reads for a
    model on `device`. On one CUDA device that is this process's own allocator
    (`process_memory`); the device-wide used fraction alone counts PyTorch's cache as
    pressure, so a size that shrank, or a run whose first batch was large, never grew
    again. Elsewhere (CPU, multi-device maps) the used fraction is all there is."""
    return {"probe": memory_fraction_probe(device), "memory": process_memory(device)}


def nvml_status() -> str:
    """One human line saying which source the readings come from and why."""
    if _NVML.ensure():
        names = ", ".join(sorted({name for _, _, name in _NVML.handles}))
        return f"NVML: {len(_NVML.handles)} NVIDIA GPU(s) ({names})"
    if _torch_cuda() is not None:
        return f"NVML unavailable ({_NVML.error}); showing torch.cuda memory"
    return f"no NVIDIA GPU (NVML: {_NVML.error}); showing host memory"
