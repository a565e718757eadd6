"""Waiting for something another process does (a queue, a Slurm job, a rank): one
helper so every test polls the same way and fails with what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], seconds: float, what: str, every: float = 0.25
) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
