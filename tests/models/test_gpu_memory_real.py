"""The memory readings on a real CUDA device (skipped where there is none)."""

from __future__ import annotations

import pytest
import torch

from labdeck.backend.batching import BatchController
from labdeck.backend.gpu import ProcessMemory, process_memory

MiB = 2**20


def test_without_a_gpu_there_are_no_process_readings() -> None:
    if torch.cuda.is_available():
        assert isinstance(process_memory("cuda:0"), ProcessMemory)
    else:
        assert process_memory("cuda:0") is None
    assert process_memory("cpu") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_readings_measure_each_batch_and_the_controller_grows() -> None:
    memory = process_memory("cuda:0")
    assert memory is not None
    model = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda:0")  # stands for weights

    def work(batch: list[int]) -> int:
        activations = torch.empty(len(batch) * 16 * MiB, dtype=torch.uint8, device="cuda:0")
        return int(activations.numel())

    sizes = [b.size for b in BatchController(1, 16, memory=memory).iter_batches(range(80), work)]
    assert sizes[:5] == [1, 2, 4, 8, 16]  # a huge device: doubling up to the maximum
    assert memory.allocated() >= model.numel()
    assert memory.peak() >= model.numel() + 16 * 16 * MiB
    memory.reset_peak()
    assert memory.peak() < model.numel() + 16 * 16 * MiB  # the peak is per batch
    memory.empty_cache()
    assert memory.reserved() - memory.allocated() < 16 * 16 * MiB
    assert 0 <= memory.others() < memory.total()
