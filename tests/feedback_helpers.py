"""Helpers of the feedback tests: presets pointing at the loopback server, kill timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KEY = "tk-loopback-secret-0123456789"


def api_preset(tmp_path: Path, url: str, **params: Any) -> Path:
    """A preset running the given stages against the loopback server, fast."""
    base = {
        "provider": "together",
        "backend": "together",
        "base_url": url,
        "generation_model": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "judge": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
        "test_size": 4,
        "delay": 0.0,
        "concurrency": 4,
        "backoff": 0.05,
        "poll_seconds": 0.05,
        "suffix": "t",
        **params,
    }
    lines = ['kind = "feedback"', 'title = "loop"', "[params]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in base.items()]
    path = tmp_path / "preset.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labdeck.backend.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL the runner as soon as `ready()` holds (polled)."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"runner ended before the kill: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting to kill the runner")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for ln in path.read_text().splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            pass
    return out


def only_run(results: Path) -> Path:
    runs = [p for p in results.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
