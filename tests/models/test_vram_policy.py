"""The GPU memory policy against a simulated device.

The controller and `gpu.ProcessMemory` are the real code a GPU run uses; only the
readings underneath (`torch.cuda`'s memory functions and the device-wide used/total
that NVML reports) come from `SimulatedDevice`: a device with a fixed total, a model
of fixed size, a batch whose need grows faster than linearly with its size, a caching
allocator that keeps freed blocks reserved, and other processes whose use changes
mid-run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from labdeck.backend.batching import BatchController, BatchPolicy, BatchTooLarge
from labdeck.backend.gpu import ProcessMemory

GiB = 2**30


class SimulatedDevice:
    """torch.cuda's memory functions for one simulated device (the subset the policy reads)."""

    def __init__(
        self, total: int, model: int, per_item: float, growth: float, others: Callable[[int], int]
    ) -> None:
        self.total, self.model = total, model
        self.others_at = others  # other processes' use, by batch attempt number
        self.attempts = 0
        self.per_item, self.growth = per_item, growth
        self.allocated = self.peak = self.reserved = model
        self.others = 0
        self.context = 300 * 2**20  # the CUDA context: seen by NVML, not by the allocator
        self.ooms = 0

    def need(self, n: int) -> int:
        return self.model + int(n * self.per_item * (1 + self.growth * n))

    def largest_feasible(self) -> int:
        n = 0
        while self.others + self.context + self.need(n + 1) <= self.total:
            n += 1
        return n

    # -- the work: a batch allocates, peaks, and frees back into the cache
    def run(self, batch: list[int]) -> list[int]:
        self.others = self.others_at(self.attempts)  # changes while a batch runs
        self.attempts += 1
        need = self.need(len(batch))
        if self.others + self.context + need > self.total:
            self.ooms += 1
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {need} bytes")
        self.peak = max(self.peak, need)
        self.reserved = max(self.reserved, need)
        return batch

    # -- torch.cuda's names
    def memory_allocated(self, _index: int) -> int:
        return self.allocated

    def max_memory_allocated(self, _index: int) -> int:
        return self.peak

    def memory_reserved(self, _index: int) -> int:
        return self.reserved

    def reset_peak_memory_stats(self, _index: int) -> None:
        self.peak = self.allocated

    def empty_cache(self) -> None:
        self.reserved = self.allocated

    # -- what NVML reports for the whole device
    def device_used(self) -> tuple[int, int]:
        return self.others + self.context + self.reserved, self.total


def phase(attempt: int) -> str:
    return "calm" if attempt < 30 else "pressure" if attempt < 60 else "after"


def test_the_size_converges_near_the_largest_feasible_batch_and_recovers_after_pressure():
    dev = SimulatedDevice(
        total=80 * GiB,
        model=6 * GiB,
        per_item=0.5 * GiB,
        growth=0.004,
        others=lambda attempt: 25 * GiB if phase(attempt) == "pressure" else 0,
    )
    memory = ProcessMemory("cuda:0", cuda=dev, device_used=dev.device_used)
    changes: list[tuple[int, str]] = []
    ctl = BatchController(
        8,
        400,
        memory=memory,
        on_change=lambda size, reason: changes.append((size, reason)),
        policy=BatchPolicy(pause_seconds=0.0),
        sleep=lambda _s: None,
    )
    items = list(range(6000))
    done: list[int] = []
    sizes: dict[str, list[tuple[int, int]]] = {"calm": [], "pressure": [], "after": []}
    for batch in ctl.iter_batches(items, dev.run):
        sizes[phase(dev.attempts - 1)].append((batch.size, dev.largest_feasible()))
        done.extend(batch.items)
    assert done == items  # every unit once, in order, through every OOM retry

    def settled(name: str) -> list[float]:
        return [size / feasible for size, feasible in sizes[name][-10:]]

    for name in sizes:
        assert min(settled(name)) >= 0.9 and max(settled(name)) <= 1.0, (name, sizes[name])
    reasons = [r for _, r in changes]
    assert reasons.count("oom") >= 1  # the other job's memory arrived mid-batch
    assert dev.ooms == reasons.count("oom") <= 4  # each one retried with the same items
    assert "pause" not in reasons  # running near full is the goal, not a reason to wait
    after = sizes["after"]
    assert after[-1][0] > max(s for s, _ in sizes["pressure"][-10:])  # grew back


def test_perplexity_windows_shrink_on_oom_and_give_the_same_value(tiny, monkeypatch) -> None:
    from labdeck.backend.generation import perplexity

    model, tok = tiny
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 6
    expected = perplexity(model, tok, text, window=16)
    real_forward = model.forward
    rows: list[int] = []

    def forward_with_small_memory(*args, **kwargs):
        rows.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward_with_small_memory)
    changes: list[tuple[int, str]] = []
    ctl = BatchController(8, 8, on_change=lambda s, r: changes.append((s, r)))
    assert perplexity(model, tok, text, window=16, controller=ctl) == pytest.approx(
        expected, rel=1e-5
    )
    assert rows[:3] == [8, 4, 2] and max(rows[3:]) <= 2  # shrunk, then every window scored
    assert [r for _, r in changes] == ["start", "oom", "oom"]


def test_guarded_work_is_retried_after_an_oom_and_stops_clearly_when_it_never_fits() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (another job held the device)")
        return "degraded"

    pauses: list[float] = []
    ctl = BatchController(4, 4, policy=BatchPolicy(pause_seconds=0.5), sleep=pauses.append)
    assert ctl.guard(flaky, "degrading mlp at level 0.1") == "degraded"
    assert len(calls) == 2 and pauses == [0.5]

    def never() -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    with pytest.raises(
        BatchTooLarge, match=r"out of memory while degrading mlp at level 0.1, 2 attempts"
    ):
        ctl.guard(never, "degrading mlp at level 0.1", attempts=2)
