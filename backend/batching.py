"""The adaptive batch controller: the seed-001 VRAM policy, made safe.

The original scripts grew the batch while memory was under 40 %, paused over 90 % and
aborted over 95 %, losing the batch in hand on an out-of-memory error. Here:

- after every batch the probe is consulted: under `grow_below` the size doubles (up to
  the maximum), over `pause_above` the loop warns and pauses, over `shrink_above` the
  size halves instead of aborting;
- an out-of-memory error frees the allocator cache, halves the size and retries the
  *same* items, so nothing is lost or done twice; a size that ran out of memory is never
  grown back into;
- only when a single item does not fit does it stop, with `BatchTooLarge` saying which.

Every change is reported through `on_change(size, reason)` (the runner turns it into a
`batch` event) and every batch is handed over with the size it was produced with, so
records can carry it.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Reason = Literal["start", "grow", "shrink", "oom", "pause"]
log = logging.getLogger(__name__)


class BatchTooLarge(RuntimeError):
    """Even a batch of one item ran out of memory; the message names the item."""


_OOM_PHRASES = ("out of memory", "can't allocate memory")  # CUDA/MPS/XPU, and torch's CPU allocator


def is_oom(exc: BaseException) -> bool:
    """True for the errors that mean "this batch did not fit in device memory"."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    if torch is not None:
        for owner in (torch, torch.cuda):
            oom_type = getattr(owner, "OutOfMemoryError", None)
            if isinstance(oom_type, type) and isinstance(exc, oom_type):
                return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(p in message for p in _OOM_PHRASES)


def free_memory() -> None:
    """Drop what the failed batch left behind so the retry sees the memory really free."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Batch(Generic[T, R]):
    """One processed batch: its items (in input order), the work's result, and the size used."""

    start: int  # index of items[0] in the input sequence
    items: list[T]
    result: R
    size: int  # the controller's batch size when this batch ran (>= len(items))


@dataclass(frozen=True)
class BatchPolicy:
    """Memory thresholds as fractions of the device's total memory (see module docstring)."""

    grow_below: float = 0.40
    pause_above: float = 0.90
    shrink_above: float = 0.95
    pause_seconds: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.grow_below <= self.pause_above <= self.shrink_above <= 1.0:
            raise ValueError(
                "batch thresholds must satisfy 0 <= grow_below <= pause_above <= shrink_above <= 1; "
                f"got {self.grow_below}, {self.pause_above}, {self.shrink_above}"
            )
        if self.pause_seconds < 0:
            raise ValueError(f"pause_seconds must be >= 0, got {self.pause_seconds}")


def _describe(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 120 else text[:117] + "..."


class BatchController:
    """Splits work into batches whose size follows device memory (see module docstring)."""

    def __init__(
        self,
        start: int,
        maximum: int,
        *,
        probe: Callable[[], float | None] | None = None,
        on_change: Callable[[int, Reason], None] | None = None,
        policy: BatchPolicy | None = None,
        describe: Callable[[object], str] = _describe,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if maximum < 1:
            raise ValueError(f"maximum batch size must be >= 1, got {maximum}")
        if start < 1:
            raise ValueError(f"start batch size must be >= 1, got {start}")
        self.maximum = maximum
        self.size = min(start, maximum)
        self.policy = policy or BatchPolicy()
        self._probe = probe
        self._on_change = on_change
        self._describe = describe
        self._sleep = sleep
        self._ceiling = maximum  # lowered below any size that ran out of memory
        self._started = False

    # ---------------------------------------------------------------- reporting
    def _report(self, reason: Reason) -> None:
        if self._on_change is not None:
            self._on_change(self.size, reason)

    def _read_probe(self) -> float | None:
        if self._probe is None:
            return None
        try:
            return self._probe()
        except Exception as exc:  # a flaky sensor must not end a run
            log.warning("memory probe failed (%s); batch size left at %d", exc, self.size)
            return None

    # ---------------------------------------------------------------- policy
    def after_batch(self) -> None:
        """Apply the memory policy once; called between batches."""
        frac = self._read_probe()
        if frac is None:
            return
        p = self.policy
        if frac > p.shrink_above and self.size > 1:
            self.size = max(1, self.size // 2)
            self._report("shrink")
            return
        # Over the pause line, or over the shrink line at one item where shrinking cannot
        # help: wait briefly so memory held by others (or being freed) can drain.
        if frac > p.pause_above:
            log.warning("memory at %.0f%% (over %.0f%%): pausing", frac * 100, p.pause_above * 100)
            self._report("pause")
            self._sleep(p.pause_seconds)
            return
        if frac < p.grow_below and self.size < min(self.maximum, self._ceiling):
            self.size = min(self.size * 2, self.maximum, self._ceiling)
            self._report("grow")

    def _on_oom(self, items: Sequence[object], exc: BaseException) -> None:
        free_memory()
        if self.size <= 1 or len(items) <= 1:
            raise BatchTooLarge(
                f"out of memory with batch size 1: item {self._describe(items[0])} does not fit "
                f"on the device ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                "use a smaller model, a lower dtype, 4-bit loading or shorter inputs"
            ) from exc
        failed = min(self.size, len(items))
        self._ceiling = max(1, failed - 1)
        self.size = max(1, failed // 2)
        self._report("oom")

    # ---------------------------------------------------------------- driving work
    def iter_batches(
        self, items: Sequence[T], work: Callable[[list[T]], R]
    ) -> Iterator[Batch[T, R]]:
        """Yield each processed batch in input order; every item appears in exactly one.

        The caller handles a batch (records it, checks for a stop) before the next one
        runs, so a stop between batches never loses a finished one.
        """
        if not self._started:
            self._started = True
            self._report("start")
        pos = 0
        while pos < len(items):
            chunk = list(items[pos : pos + self.size])
            try:
                result = work(chunk)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                self._on_oom(chunk, exc)
                continue  # same position, smaller size: the same items again
            yield Batch(pos, chunk, result, self.size)
            pos += len(chunk)
            if pos < len(items):
                self.after_batch()

    def process(
        self,
        items: Sequence[T],
        work: Callable[[list[T]], R],
        on_batch: Callable[[list[T], R, int], None] | None = None,
    ) -> list[R]:
        """Run `work` over all items; `on_batch(items, result, size)` after each batch."""
        results = []
        for batch in self.iter_batches(items, work):
            if on_batch is not None:
                on_batch(batch.items, batch.result, batch.size)
            results.append(batch.result)
        return results
