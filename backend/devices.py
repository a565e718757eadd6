"""Which CUDA devices this process could use, answered without importing torch.

Validation must say "no GPU here" before a run directory exists, and it must stay
instant, so it never imports torch (seconds) to ask. The answer comes from NVML (the
same reading the memory strip uses, which honours CUDA_VISIBLE_DEVICES), or, where
the NVML library is missing, from the driver's /proc/driver/nvidia/gpus entries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UserError, clip

DEVICE_SYNTAX = re.compile(r"^(auto|cpu|cuda(:\d{1,3})?)$")
PROC_GPUS = Path("/proc/driver/nvidia/gpus")


def _visible_limit() -> int | None:
    """How many devices CUDA_VISIBLE_DEVICES lets through (None: no restriction)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return None
    n = 0
    for token in (t.strip() for t in env.split(",")):
        if not token or token.startswith("-"):
            break  # CUDA stops at the first invalid entry
        n += 1
    return n


def cuda_device_count() -> int:
    """CUDA devices visible to this process (0 on a machine without an NVIDIA GPU)."""
    from . import gpu

    readings = gpu.probe_all()
    if any(r.source == "nvml" for r in readings):
        return sum(1 for r in readings if r.device.startswith("cuda:"))
    if any(r.source == "torch" for r in readings):  # torch already loaded and sees devices
        return len(readings)
    try:
        n = sum(1 for _ in PROC_GPUS.iterdir()) if PROC_GPUS.is_dir() else 0
    except OSError:
        n = 0
    limit = _visible_limit()
    return n if limit is None else min(n, limit)


def check_device(device: str, where: str) -> None:
    """Refuse, as a UserError naming `where`, a device this machine cannot provide."""
    if not DEVICE_SYNTAX.match(device):
        raise UserError(f"{where}: {clip(device)}: expected auto, cpu, cuda or cuda:N")
    if not device.startswith("cuda"):
        return
    count = cuda_device_count()
    if count == 0:
        raise UserError(
            f"{where}: {device!r} but no CUDA GPU is visible here ({_why_none()}); use cpu or auto"
        )
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise UserError(
            f"{where}: {device!r} but only {count} CUDA device(s) are visible "
            f"(cuda:0..cuda:{count - 1})"
        )


def check_4bit(where: str) -> None:
    """4-bit loading (bitsandbytes) runs only on CUDA: refuse it up front on a machine without."""
    if cuda_device_count() == 0:
        raise UserError(
            f"{where}: 4-bit loading needs a CUDA GPU and none is visible here ({_why_none()}); "
            "set load_4bit=false"
        )


def _why_none() -> str:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and _visible_limit() == 0:
        return f"CUDA_VISIBLE_DEVICES={env!r}"
    from . import gpu

    return gpu.nvml_status()
