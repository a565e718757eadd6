"""The adaptive batch controller: the seed-001 VRAM policy, made safe.

The original scripts grew the batch while memory was under 40 %, paused over 90 % and
aborted over 95 %, losing the batch in hand on an out-of-memory error. Here, on a GPU
(`memory=` a `gpu.ProcessMemory`), the policy reads this process's own allocator:

- before each batch the peak statistics are reset, so after it `peak - base` is what the
  batch itself needed; per item, that predicts the need of any size. The batch's share
  of the device is (other processes' memory + our peak) / total; other processes'
  memory comes from NVML, our own never counts PyTorch's cache as used;
- over `shrink_above` the size drops to the largest predicted to fit under it (the cache
  is emptied, so the memory goes back to the device); over `pause_above` it holds, and
  pauses only when other processes leave no room for even one more item; otherwise it
  grows toward the largest size predicted to fit under `shrink_above` (at most doubling
  per batch);
- an out-of-memory error is handled after the `except` block has ended (inside it the
  traceback still holds the failed batch's tensors): the cache is emptied, the size
  shrinks, and the *same* items are retried, so nothing is lost or done twice. The size
  that failed is a ceiling only while other processes hold as much memory as when it
  failed: once they release it, the size may grow back;
- only when a single item does not fit does it stop, with `BatchTooLarge` saying which.

Without a GPU the coarse `probe=` (a used fraction of host memory) keeps the seed's
rules: double under `grow_below`, pause over `pause_above`, halve over `shrink_above`.
`guard(work, what)` gives work that has no batch dimension (degrading a tensor) the same
protection: free, pause, retry, and a clear stop if it never fits.

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
from typing import Generic, Literal, Protocol, TypeVar

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
    """Drop what the failed batch left behind so the retry sees the memory really free.

    Call it after the `except` block has ended: until then the traceback keeps the
    failed batch's frames, and with them its tensors, alive.
    """
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class MemoryReadings(Protocol):
    """This process's view of the device a model runs on (bytes); see gpu.ProcessMemory."""

    def total(self) -> int: ...
    def allocated(self) -> int: ...
    def peak(self) -> int: ...
    def reserved(self) -> int: ...
    def others(self) -> int: ...
    def reset_peak(self) -> None: ...
    def empty_cache(self) -> None: ...


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _detach(exc: BaseException) -> BaseException:
    """The error without its traceback: the frames (and tensors) it held can be freed."""
    exc.__traceback__ = None
    exc.__context__ = None
    return exc


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

    HISTORY = 8  # sizes whose measured per-item cost is remembered

    def __init__(
        self,
        start: int,
        maximum: int,
        *,
        probe: Callable[[], float | None] | None = None,
        memory: MemoryReadings | None = None,
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
        self._memory = memory
        self._on_change = on_change
        self._describe = describe
        self._sleep = sleep
        self._ceiling = maximum  # lowered below any size that ran out of memory
        self._ceiling_others: int | None = None  # others' memory when that happened
        self._costs: dict[int, float] = {}  # size -> bytes per item, measured or bounded
        self._measured: set[int] = set()  # sizes in _costs whose cost a finished batch measured
        self._base = 0  # this process's allocation before the last batch (the model)
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

    def _pause(self, why: str) -> None:
        log.warning("%s: pausing %.1f s", why, self.policy.pause_seconds)
        self._report("pause")
        self._sleep(self.policy.pause_seconds)

    # ---------------------------------------------------------------- memory model
    def _per_item(self, n: int) -> float | None:
        """Predicted bytes per item at size `n`, from what batches really needed.

        Per-item cost is taken as linear in the size (attention and logits grow faster
        than the batch): interpolated between the measured sizes around `n`,
        extrapolated from the two largest beyond them, never below a measurement.
        """
        if not self._costs:
            return None
        sizes = sorted(self._costs)
        if n <= sizes[0] or len(sizes) == 1:
            return self._costs[sizes[0]] if n <= sizes[0] else self._costs[sizes[-1]]
        below = max(s for s in sizes if s <= n) if n < sizes[-1] else sizes[-2]
        above = min(s for s in sizes if s > below)
        c1, c2 = self._costs[below], self._costs[above]
        slope = max(0.0, (c2 - c1) / (above - below))
        return max(c1, c1 + slope * (n - below))

    def _fit(self, fraction: float, others: int) -> int | None:
        """Largest size predicted to keep (others + base + items) under `fraction` of total."""
        assert self._memory is not None
        if not self._costs:
            return None
        room = fraction * self._memory.total() - others - self._base
        lo, hi = 0, self.maximum  # need(n) = n * per_item(n) grows with n: bisect
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if mid * (self._per_item(mid) or 0.0) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _remember(self, size: int, per_item: float, *, measured: bool) -> None:
        self._costs.pop(size, None)
        self._costs[size] = per_item
        if measured:
            self._measured.add(size)
        else:
            self._measured.discard(size)
        while len(self._costs) > self.HISTORY:
            self._measured.discard(oldest := next(iter(self._costs)))
            self._costs.pop(oldest)

    def _limit(self) -> int:
        return min(self.maximum, self._ceiling)

    # ---------------------------------------------------------------- policy
    def before_batch(self) -> None:
        """Start measuring this batch alone (peak statistics reset, base noted)."""
        if self._memory is None:
            return
        try:
            self._memory.reset_peak()
            self._base = self._memory.allocated()
        except Exception as exc:
            log.warning("memory readings failed (%s)", exc)

    def after_batch(self, items: int | None = None) -> None:
        """Apply the memory policy once; called between batches with the items just done."""
        if self._memory is not None:
            try:
                self._after_batch_readings(items or self.size)
            except Exception as exc:  # a flaky sensor must not end a run
                log.warning("memory readings failed (%s); batch size left at %d", exc, self.size)
            return
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
            self._pause(f"memory at {frac:.0%} (over {p.pause_above:.0%})")
            return
        if frac < p.grow_below and self.size < self._limit():
            self.size = min(self.size * 2, self._limit())
            self._report("grow")

    def _after_batch_readings(self, items: int) -> None:
        mem, p = self._memory, self.policy
        assert mem is not None
        peak, others, total = mem.peak(), mem.others(), mem.total()
        self._remember(items, max(0, peak - self._base) / max(1, items), measured=True)
        if self._ceiling_others is not None and others < self._ceiling_others - (
            self._per_item(self._ceiling) or 0.0
        ):
            # The memory that made the failed size fail has been released: the failed
            # size may fit again, so it is no longer a ceiling.
            self._ceiling, self._ceiling_others = self.maximum, None
        frac = (others + peak) / total
        fit_shrink = self._fit(p.shrink_above, others)
        fit_pause = self._fit(p.pause_above, others)
        if frac > p.shrink_above:
            if self.size > 1:
                self.size = max(1, min(self.size - 1, fit_shrink or self.size // 2))
                mem.empty_cache()  # give back what the bigger batch had cached
                self._report("shrink")
            else:
                mem.empty_cache()
                self._pause(f"one item needs {frac:.0%} of device memory")
            return
        if fit_pause is not None and fit_pause < 1:
            mem.empty_cache()
            self._pause(f"other processes hold {others / total:.0%} of device memory")
            return
        if frac > p.pause_above or fit_shrink is None:
            return
        target = min(fit_shrink, self._limit(), self.size * 2)
        if target > self.size:  # measured under the pause line: never shrink from here
            self.size = target
            self._report("grow")

    def _on_oom(self, items: Sequence[object], exc: BaseException) -> None:
        free_memory()
        if self.size <= 1 or len(items) <= 1:
            raise BatchTooLarge(
                f"out of memory with batch size 1: item {self._describe(items[0])} does not fit "
                f"on the device ({_first_line(exc)}); "
                "use a smaller model, a lower dtype, 4-bit loading or shorter inputs"
            ) from exc
        failed = min(self.size, len(items))
        self._ceiling = max(1, failed - 1)
        smaller = max(1, failed // 2)
        if self._memory is not None:
            try:
                others, total = self._memory.others(), self._memory.total()
                self._ceiling_others = others
                # It did not fit, so each item needs more than the room there was: a lower
                # bound only. Without a finished batch below this size the bound alone would
                # predict a size just under the failed one, and shrink by a few per cent per
                # out-of-memory error (a sweep starting at a large max_batch_size then failed
                # dozens of times in a row); halve instead until one size is measured.
                measured_below = any(s < failed for s in self._measured)
                room = max(0, total - others - self._base)
                bound = max(room / failed, self._per_item(failed) or 0.0)
                self._remember(failed, bound, measured=False)
                fit = self._fit(self.policy.shrink_above, others)
                if fit is not None and measured_below:
                    smaller = max(1, min(failed - 1, fit))
            except Exception as exc2:
                log.warning("memory readings failed (%s)", exc2)
        self.size = smaller
        self._report("oom")

    def guard(self, work: Callable[[], R], what: str, attempts: int = 3) -> R:
        """Run `work` (no batch dimension) with the same out-of-memory protection.

        On an out-of-memory error the cache is freed (outside the `except`), the loop
        pauses so other processes can release memory, and `work` runs again from the
        start (it must be safe to repeat); after `attempts` failures it stops with a
        `BatchTooLarge` naming `what`.
        """
        for attempt in range(1, attempts + 1):
            failure: BaseException | None = None
            try:
                return work()
            except Exception as exc:
                if not is_oom(exc):
                    raise
                failure = _detach(exc)
            free_memory()
            if self._memory is not None:
                self._memory.empty_cache()
            if attempt == attempts:
                raise BatchTooLarge(
                    f"out of memory while {what}, {attempts} attempts ({_first_line(failure)}); "
                    "free device memory held by other processes, or use a smaller model, "
                    "a lower dtype or 4-bit loading"
                ) from failure
            self._pause(f"out of memory while {what} (attempt {attempt} of {attempts})")
        raise AssertionError("unreachable")

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
            self.before_batch()
            failure: BaseException | None = None
            try:
                result = work(chunk)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                failure = _detach(exc)
            if failure is not None:  # out of the except: the failed batch can be freed now
                self._on_oom(chunk, failure)
                continue  # same position, smaller size: the same items again
            yield Batch(pos, chunk, result, self.size)
            pos += len(chunk)
            if pos < len(items):
                self.after_batch(len(chunk))

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
