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


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def source_checkout(root: Path | None = None) -> Path | None:
    """The labdeck source checkout this code runs from, or None for an installed wheel.

    Only a folder that is both labdeck's own project root (its pyproject names the
    distribution) and the top of a git work tree counts: an installed copy inside
    site-packages sits in whatever repository holds the virtualenv, and that
    repository's commit says nothing about labdeck.
    """
    root = (root or Path(__file__).resolve().parent.parent).resolve()
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    if 'name = "labdeck"' not in pyproject:
        return None
    top = _git(root, "rev-parse", "--show-toplevel")
    return root if top and Path(top).resolve() == root else None


def git_commit() -> dict[str, Any] | None:
    """labdeck's own commit and whether its tracked files differ from it (`dirty`)."""
    root = source_checkout()
    if root is None:
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "backend", "tui")
    return {"commit": commit, "dirty": bool(status)}


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
        "labdeck": _version("labdeck") or __version__,
        "labdeck_source": git_commit(),
        "device": device_name(),
    }
