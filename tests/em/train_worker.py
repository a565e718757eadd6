"""Trains the tiny model in an existing run directory, one step at a time and slowly, so a
test can SIGKILL it between two checkpoints. Usage: train_worker.py RUN_DIR MODEL DATA SPEC_JSON"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import torch

from labdeck.backend.events import EventWriter
from labdeck.backend.kinds.base import RunContext, StateKeeper
from labdeck.backend.ledger import Ledger
from labdeck.backend.runs import Run


class SlowContext(RunContext):
    """A RunContext whose progress reports take a while: the window for the kill."""

    def __init__(self, *args, delay: float, **kw) -> None:
        super().__init__(*args, **kw)
        self.delay = delay

    def progress(self, done, total=None, **extra) -> None:
        super().progress(done, total, **extra)
        time.sleep(self.delay)


def train(run_dir: Path, model_dir: str, data: str, spec: dict, delay: float = 0.0) -> dict:
    from labdeck.backend.models import load_model
    from labdeck.backend.training import LoraSpec, LoraTrainer, TrainSpec, read_chat_jsonl

    torch.set_num_threads(1)
    run = Run(run_dir)
    ctx = SlowContext(
        run,
        None,
        EventWriter(run.events_path),
        Ledger(run.records_path),
        StateKeeper(run),
        logging.getLogger("worker"),
        threading.Event(),
        delay=delay,
    )
    model, tok = load_model(model_dir, dtype="float32")
    trainer = LoraTrainer(
        model,
        tok,
        read_chat_jsonl(data),
        TrainSpec(**spec["train"]),
        LoraSpec(**spec["lora"]),
        save_steps=spec["save_steps"],
    )
    result = trainer.run(ctx)
    return {"losses": [r["loss"] for r in result.losses], "resumed_from": result.resumed_from}


if __name__ == "__main__":
    out = train(Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), delay=0.4)
    print(json.dumps(out))
