"""A stage's progress counts every item as it finishes: a local batch completes several
items in the same instant, and each of them shows, with the time left."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.kinds.base import RunContext, StateKeeper
from labdeck.backend.kinds.feedback.config import Params
from labdeck.backend.kinds.feedback.telemetry import StageMeter
from labdeck.backend.ledger import Ledger
from labdeck.backend.runs import create_run_dir


def test_items_of_one_batch_each_show_as_they_finish(results_dir: Path) -> None:
    run = create_run_dir(results_dir, "20260101_000000_feedback_t_000001", "{}")
    events, ledger = EventWriter(run.events_path), Ledger(run.records_path)
    ctx = RunContext(
        run, Params(), events, ledger, StateKeeper(run), logging.getLogger("t"), threading.Event()
    )
    meter = StageMeter(ctx, None, every=60.0)
    meter.start("process", total=8, done=0)
    time.sleep(2.1)  # the first batch takes its time...
    for _ in range(4):  # ...then its four items finish in the same instant
        meter.done += 1
        meter.tick()
    ctx.state.flush()
    events.close()
    ledger.close()
    done = [e["done"] for e in iter_jsonl(run.events_path) if e["type"] == "progress"]
    assert done == [0, 1, 2, 3, 4]
    last = [e for e in iter_jsonl(run.events_path) if e["type"] == "progress"][-1]
    assert 1.5 < last["eta_seconds"] < 3.5  # 4 items in ~2.1 s, 4 to go
    st = run.state()
    assert (st["phase"], st["done"], st["total"]) == ("process", 4, 8)
