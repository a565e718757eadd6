"""A simulated CUDA device for the batch policy: the readings `gpu.ProcessMemory` takes
(`torch.cuda`'s memory functions and the device-wide used/total NVML reports) from a
device with a fixed total, a model of fixed size, a batch whose need grows faster than
linearly with its size, a caching allocator that keeps freed blocks reserved, and other
processes whose use changes mid-run. Shared by the tests and bench/bench_gpu.py's CPU
stand-in, so both exercise the real controller against the same device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

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
