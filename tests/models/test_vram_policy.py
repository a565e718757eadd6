"""The GPU memory policy against a simulated device.

The controller and `gpu.ProcessMemory` are the real code a GPU run uses; only the
readings underneath (`torch.cuda`'s memory functions and the device-wide used/total
that NVML reports) come from `SimulatedDevice`: a device with a fixed total, a model
of fixed size, a batch whose need grows faster than linearly with its size, a caching
allocator that keeps freed blocks reserved, and other processes whose use changes
mid-run.
"""

from __future__ import annotations

import pytest
import torch
from simulated_device import GiB, SimulatedDevice

from labdeck.backend.batching import BatchController, BatchPolicy, BatchTooLarge
from labdeck.backend.gpu import ProcessMemory


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


def test_starting_far_above_the_feasible_size_costs_few_out_of_memory_errors():
    """A sweep starts at min(prompts, max_batch_size): with a large maximum the first batch
    does not fit. The failure gives only a lower bound of the cost per item, which used to
    shrink the size by a few per cent per error (28 errors in a row here); halving until a
    batch is measured finds the device's limit in a few."""
    dev = SimulatedDevice(
        total=80 * GiB, model=6 * GiB, per_item=0.5 * GiB, growth=0.004, others=lambda _a: 0
    )
    changes: list[tuple[int, str]] = []
    ctl = BatchController(
        512,
        1024,
        memory=ProcessMemory("cuda:0", cuda=dev, device_used=dev.device_used),
        on_change=lambda size, reason: changes.append((size, reason)),
        policy=BatchPolicy(pause_seconds=0.0),
        sleep=lambda _s: None,
    )
    items = list(range(3000))
    done: list[int] = []
    sizes = []
    for batch in ctl.iter_batches(items, dev.run):
        done.extend(batch.items)
        sizes.append(batch.size)
    assert done == items
    assert [r for _, r in changes].count("oom") <= 4, changes
    assert 0.9 <= sizes[-2] / dev.largest_feasible() <= 1.0, changes


def test_training_micro_batches_follow_the_process_allocator_on_a_cuda_device(monkeypatch):
    """With the device-wide used fraction alone (60 % here: the model plus PyTorch's cache)
    the micro-batch never grew on a GPU; through `gpu.batch_readings` the trainer's
    controller reads this process's allocator, as the sweep does, and grows."""
    from labdeck.backend import gpu
    from labdeck.backend.training import TrainSpec, adaptive_controller

    dev = SimulatedDevice(
        total=80 * GiB, model=6 * GiB, per_item=0.5 * GiB, growth=0.0, others=lambda _a: 0
    )

    def process_memory(device: str) -> ProcessMemory | None:
        return (
            ProcessMemory(device, cuda=dev, device_used=dev.device_used)
            if device != "cpu"
            else None
        )

    monkeypatch.setattr(gpu, "process_memory", process_memory)
    monkeypatch.setattr(gpu, "memory_fraction_probe", lambda _device: lambda: 0.6)
    spec = TrainSpec(effective_batch_size=64, micro_batch_size=2)
    on_gpu = adaptive_controller(spec, "cuda:0")
    sizes = [b.size for b in on_gpu.iter_batches(list(range(64)), dev.run)]
    assert sizes[0] == 2 and max(sizes) > 8
    on_cpu = adaptive_controller(spec, "cpu")  # host memory between the thresholds: holds
    assert {b.size for b in on_cpu.iter_batches(list(range(64)), dev.run)} == {2}
