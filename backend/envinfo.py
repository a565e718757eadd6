"""The software and hardware a run was made with, recorded once in config.json."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the labdeck checkout, if it is one (a wheel install has none)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def device_name() -> str:
    try:
        from .gpu import probe_all

        devices = probe_all()
    except Exception:
        devices = []
    gpus = [d for d in devices if d.source != "host"]
    if gpus:
        return ", ".join(f"{d.device}: {d.name}" for d in gpus)
    return f"cpu ({platform.machine()}, {platform.processor() or 'unknown'})"


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "peft": _version("peft"),
        "labdeck": __version__,
        "git_commit": git_commit(),
        "device": device_name(),
    }
