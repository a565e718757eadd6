"""The batch policy and out-of-memory recovery, driven by an injected probe and real OOM errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from labdeck.backend.batching import BatchController, BatchPolicy, BatchTooLarge, is_oom


class Recorder:
    """Collects every `on_change` and every processed batch."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, str]] = []
        self.batches: list[tuple[list[int], int]] = []
        self.sleeps: list[float] = []

    def on_change(self, size: int, reason: str) -> None:
        self.changes.append((size, reason))

    def on_batch(self, items: list[int], result: object, size: int) -> None:
        self.batches.append((items, size))


def probe_from(values: list[float | None]) -> Callable[[], float | None]:
    it = iter(values)
    return lambda: next(it)


def oom_above(limit: int, exc_type: type[BaseException] = torch.OutOfMemoryError):
    """Work that fails like a GPU would when a batch is larger than `limit`."""
    seen: list[list[int]] = []

    def work(batch: list[int]) -> list[int]:
        seen.append(list(batch))
        if len(batch) > limit:
            raise exc_type(f"CUDA out of memory. Tried to allocate {len(batch)} GiB")
        return [x * 10 for x in batch]

    return work, seen


def make(rec: Recorder, start: int, maximum: int, probe=None, **policy) -> BatchController:
    return BatchController(
        start,
        maximum,
        probe=probe,
        on_change=rec.on_change,
        policy=BatchPolicy(**policy) if policy else None,
        sleep=rec.sleeps.append,
    )


def test_grows_under_40_percent_up_to_maximum() -> None:
    rec = Recorder()
    ctl = make(rec, 1, 8, probe=lambda: 0.10)
    results = ctl.process(list(range(20)), lambda b: sum(b), rec.on_batch)
    assert [size for _, size in rec.batches] == [1, 2, 4, 8, 8]
    assert [len(items) for items, _ in rec.batches] == [1, 2, 4, 8, 5]
    assert rec.changes == [(1, "start"), (2, "grow"), (4, "grow"), (8, "grow")]
    assert sum(results) == sum(range(20))


def test_between_thresholds_size_holds() -> None:
    rec = Recorder()
    ctl = make(rec, 4, 16, probe=lambda: 0.60)
    ctl.process(list(range(12)), len, rec.on_batch)
    assert [size for _, size in rec.batches] == [4, 4, 4]
    assert rec.changes == [(4, "start")]
    assert rec.sleeps == []


def test_over_90_percent_warns_and_pauses_without_resizing() -> None:
    rec = Recorder()
    ctl = make(rec, 4, 16, probe=lambda: 0.92, pause_seconds=0.25)
    ctl.process(list(range(12)), len, rec.on_batch)
    assert rec.changes == [(4, "start"), (4, "pause"), (4, "pause")]
    assert rec.sleeps == [0.25, 0.25]
    assert [size for _, size in rec.batches] == [4, 4, 4]


def test_over_95_percent_shrinks_then_recovers_growth() -> None:
    rec = Recorder()
    ctl = make(rec, 8, 8, probe=probe_from([0.97, 0.97, 0.30, 0.30, 0.30]))
    ctl.process(list(range(30)), len, rec.on_batch)
    assert rec.changes == [(8, "start"), (4, "shrink"), (2, "shrink"), (4, "grow"), (8, "grow")]
    assert [len(items) for items, _ in rec.batches] == [8, 4, 2, 4, 8, 4]


def test_over_95_percent_at_size_one_pauses_instead() -> None:
    rec = Recorder()
    ctl = make(rec, 1, 4, probe=lambda: 0.99)
    ctl.process([1, 2], len, rec.on_batch)
    assert rec.changes == [(1, "start"), (1, "pause")]


def test_oom_at_8_shrinks_to_4_and_loses_nothing() -> None:
    rec = Recorder()
    work, seen = oom_above(4)
    ctl = make(rec, 8, 8)
    items = list(range(19))
    results = ctl.process(items, work, rec.on_batch)
    done = [x for batch, _ in rec.batches for x in batch]
    assert done == items  # every item once, in order
    assert [x for r in results for x in r] == [x * 10 for x in items]
    assert rec.changes == [(8, "start"), (4, "oom")]
    assert seen[0] == list(range(8)) and seen[1] == list(range(4))  # the same items retried
    assert all(size == 4 for _, size in rec.batches)


def test_growth_never_returns_to_a_size_that_ran_out_of_memory() -> None:
    rec = Recorder()
    work, _ = oom_above(5)
    ctl = make(rec, 8, 8, probe=lambda: 0.05)
    ctl.process(list(range(40)), work, rec.on_batch)
    assert max(size for _, size in rec.batches) <= 5
    assert ("oom" in [r for _, r in rec.changes]) and [
        x for b, _ in rec.batches for x in b
    ] == list(range(40))


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory"),
        torch.cuda.OutOfMemoryError("CUDA out of memory"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        MemoryError(),
    ],
)
def test_oom_types_are_recognised(exc: BaseException) -> None:
    assert is_oom(exc)


def test_other_errors_propagate_untouched() -> None:
    rec = Recorder()
    ctl = make(rec, 4, 4)

    def work(batch: list[int]) -> None:
        raise RuntimeError("shape mismatch")

    assert not is_oom(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ctl.process([1, 2, 3], work)
    assert rec.changes == [(4, "start")]


def test_batch_of_one_that_does_not_fit_raises_a_clear_error() -> None:
    rec = Recorder()
    ctl = make(rec, 4, 4)

    def work(batch: list[str]) -> None:
        if "huge prompt" in batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")
        return None

    with pytest.raises(
        BatchTooLarge, match=r"batch size 1: item 'huge prompt' does not fit"
    ) as info:
        ctl.process(["a", "b", "huge prompt", "c"], work, rec.on_batch)
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    assert rec.changes == [(4, "start"), (2, "oom"), (1, "oom")]
    assert [b for b, _ in rec.batches] == [["a", "b"]]  # finished work was handed over first


def test_a_failing_probe_does_not_stop_the_work() -> None:
    rec = Recorder()

    def probe() -> float:
        raise OSError("sensor gone")

    ctl = make(rec, 2, 8, probe=probe)
    ctl.process(list(range(6)), len, rec.on_batch)
    assert [size for _, size in rec.batches] == [2, 2, 2]


def test_state_carries_over_between_calls() -> None:
    """A kind that calls the controller once per level keeps the learned size."""
    rec = Recorder()
    work, _ = oom_above(2)
    ctl = make(rec, 4, 4)
    ctl.process([1, 2, 3, 4], work)
    ctl.process([5, 6, 7, 8], work, rec.on_batch)
    assert [size for _, size in rec.batches] == [2, 2]
    assert rec.changes.count((4, "start")) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grow_below": 0.95, "pause_above": 0.9}, "grow_below <= pause_above"),
        ({"shrink_above": 1.5}, "shrink_above <= 1"),
        ({"pause_seconds": -1}, "pause_seconds"),
    ],
)
def test_policy_rejects_inconsistent_thresholds(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchPolicy(**kwargs)


def test_sizes_are_validated() -> None:
    with pytest.raises(ValueError, match="maximum batch size"):
        BatchController(1, 0)
    with pytest.raises(ValueError, match="start batch size"):
        BatchController(0, 4)
    assert BatchController(16, 4).size == 4
