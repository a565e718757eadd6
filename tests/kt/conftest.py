"""kt test fixtures: tiny configurations, an in-process run context, and one torch thread
(the machine is shared, and one thread keeps timings steady)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from torch_threads import one_thread  # noqa: F401  (autouse fixture)

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.kinds.base import RunContext, StateKeeper
from labdeck.backend.kinds.kt.config import Params
from labdeck.backend.ledger import Ledger
from labdeck.backend.runs import create_run_dir, new_run_id

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "presets" / "kt-demo.toml"

# Tiny but learnable: a handful of seconds per run on one CPU thread.
TINY: dict[str, Any] = {
    "sim_num_students": 300,
    "sim_num_skills": 8,
    "sim_seq_len": 30,
    "seq_len": 30,
    "d_model": 16,
    "n_heads": 2,
    "num_encoder_blocks": 1,
    "d_ff": 32,
    "dropout": 0.1,
    "epochs": 5,
    "batch_size": 16,
    "learning_rate": 0.005,
    "warmup_constraint_epochs": 2,
    "alignment_warmup_epochs": 2,
    "consistency_rebalance_epoch": 2,
    "max_semantic_students": 30,
    "alignment_global_students": 60,
    "max_correlation_students": 40,
    "monitor_frequency": 1,
}


def tiny(**changes: Any) -> Params:
    return Params(**{**TINY, **changes})


class Harness:
    """A run directory plus the RunContext the runner would build for it."""

    def __init__(self, results: Path, params: Params, title: str = "t") -> None:
        run_id = new_run_id(results, "kt", title)
        config = {"run_id": run_id, "kind": "kt", "params": params.model_dump(), "md5": "x"}
        self.run = create_run_dir(results, run_id, json.dumps(config))
        self.params = params
        self.stop = threading.Event()

    def context(self) -> tuple[RunContext, EventWriter, Ledger]:
        events = EventWriter(self.run.events_path)
        ledger = Ledger(self.run.records_path)
        log = logging.getLogger(f"kt-test.{self.run.id}")
        ctx = RunContext(
            self.run, self.params, events, ledger, StateKeeper(self.run), log, self.stop, "val_auc"
        )
        return ctx, events, ledger

    def execute(self) -> dict[str, float]:
        from labdeck.backend.kinds.kt.experiment import run

        ctx, events, ledger = self.context()
        try:
            return run(ctx)
        finally:
            events.close()
            ledger.close()

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in iter_jsonl(self.run.events_path) if e["type"] == type_]

    def record_keys(self) -> list[str]:
        return [r["key"] for r in iter_jsonl(self.run.records_path)]


@pytest.fixture
def harness(results_dir: Path):
    """Factory: `harness(params)` gives a fresh run directory with its context."""
    return lambda params, title="t": Harness(results_dir, params, title)


@pytest.fixture
def tiny_params():
    """Factory: `tiny_params(**changes)` gives validated tiny parameters."""
    return tiny
