"""The `smoke` kind end to end through a real RunContext: records, events, stop and resume."""

from __future__ import annotations

import json
import logging
import threading
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.kinds import kind_config, kind_experiment, kind_names
from labdeck.backend.kinds.base import RunContext, StateKeeper, StopRequested
from labdeck.backend.ledger import Ledger
from labdeck.backend.runs import create_run_dir

ROOT = Path(__file__).resolve().parents[2]
Params = kind_config("smoke").Params


def make_ctx(run, params, stop: threading.Event) -> RunContext:
    return RunContext(
        run,
        params,
        EventWriter(run.events_path),
        Ledger(run.records_path),
        StateKeeper(run),
        logging.getLogger("test.smoke"),
        stop,
        primary_metric=kind_config("smoke").PRIMARY_METRIC,
    )


def test_params_have_defaults_bounds_and_descriptions() -> None:
    assert "smoke" in kind_names()
    defaults = Params()
    assert defaults.model == "smollm2-135m" and len(defaults.prompts) >= 3
    for name, field in Params.model_fields.items():
        assert field.description, f"{name} has no description"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Params(modle="x")
    with pytest.raises(ValidationError, match="max_batch_size"):
        Params(max_batch_size=0)
    with pytest.raises(ValidationError, match="grow_below <= pause_above"):
        Params(grow_below=0.95)
    with pytest.raises(ValidationError, match="start_batch_size"):
        Params(start_batch_size=8, max_batch_size=4)


def test_preset_parses_and_matches_the_defaults() -> None:
    preset = tomllib.loads((ROOT / "presets" / "smoke.toml").read_text())
    assert preset["kind"] == "smoke" and preset["title"] == "smoke" and preset["description"]
    assert Params(**preset["params"]) == Params()


@pytest.mark.slow
def test_dry_run_estimates_units_memory_and_time(smol) -> None:
    dry = kind_experiment("smoke").dry_run(Params(max_batch_size=4))
    assert dry.units == len(Params().prompts)
    assert 500 * 2**20 < dry.memory_bytes < 700 * 2**20  # 135M float32 weights + a small cache
    assert dry.seconds and dry.seconds > 0
    assert any("134.5M parameters" in line for line in dry.lines)


@pytest.mark.slow
def test_run_stops_between_batches_and_resumes_without_loss_or_doubling(
    smol, results_dir: Path
) -> None:
    params = Params(
        prompts=["What is the capital of France?", "Name a color.", "What is 2 plus 2?"],
        max_new_tokens=6,
        start_batch_size=2,
        max_batch_size=2,
        grow_below=0.0,  # host memory decides nothing here; keep the batch at 2
    )
    run = create_run_dir(
        results_dir, "20250101_000000_smoke_t_000001", json.dumps({"kind": "smoke"})
    )
    experiment = kind_experiment("smoke")

    stop = threading.Event()
    ctx = make_ctx(run, params, stop)
    real_record = ctx.record

    def record_then_request_stop(key: str, record: dict) -> None:
        real_record(key, record)
        stop.set()  # as SIGTERM would, in the middle of the first batch's bookkeeping

    ctx.record = record_then_request_stop  # type: ignore[method-assign]
    with pytest.raises(StopRequested):
        experiment.run(ctx)
    first = list(iter_jsonl(run.records_path))
    assert len(first) == 2  # the batch in hand was finished and recorded, nothing more

    metrics = experiment.run(make_ctx(run, params, threading.Event()))
    records = list(iter_jsonl(run.records_path))
    assert sorted(r["index"] for r in records) == [0, 1, 2]
    assert len({r["key"] for r in records}) == 3
    assert "Paris" in records[0]["output"]
    assert [r["batch_size"] for r in records] == [2, 2, 1]
    assert all(r["tokens_out"] > 0 and r["gen_params"]["do_sample"] is False for r in records)
    assert metrics["tokens_per_s"] > 0 and metrics["mean_tokens"] > 0

    events = list(iter_jsonl(run.events_path))
    types = [e["type"] for e in events]
    assert {"phase", "progress", "metric", "batch", "log"} <= set(types)
    batch_events = [(e["size"], e["reason"]) for e in events if e["type"] == "batch"]
    assert batch_events == [(2, "start"), (2, "start")]  # one per session, no resizing
    progress = [e["done"] for e in events if e["type"] == "progress"]
    assert progress[-1] == 3 and 2 in progress  # resumed at 2 of 3
    assert [e["total"] for e in events if e["type"] == "phase"] == [3, 3]

    # A third run finds nothing to do and reports the same final metrics.
    again = experiment.run(make_ctx(run, params, threading.Event()))
    assert again == metrics and len(list(iter_jsonl(run.records_path))) == 3
