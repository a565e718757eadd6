"""em test fixtures: a tiny random Llama with the embedded tokenizer (its chat template is
the real one), a run directory with the RunContext the runner would build, one thread."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import text_config_for
from torch_threads import one_thread  # noqa: F401  (autouse fixture)

from labdeck.backend.events import EventWriter
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.kinds.base import RunContext, StateKeeper
from labdeck.backend.ledger import Ledger
from labdeck.backend.models import ensure_embedded
from labdeck.backend.runs import create_run_dir, new_run_id

REPO = Path(__file__).resolve().parents[2]


def build_tiny_llama(out: Path, seed: int = 0) -> Path:
    """A 2-layer random Llama saved like a Hub checkpoint, with the embedded tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ensure_embedded(), local_files_only=True)
    config = LlamaConfig(**text_config_for(tok, max_position_embeddings=512))
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


class Harness:
    """A run directory plus the RunContext the runner would build for it."""

    def __init__(self, results: Path, params: dict[str, Any], kind: str = "em") -> None:
        run_id = new_run_id(results, kind, "t")
        config = {"run_id": run_id, "kind": kind, "params": params, "md5": "x"}
        self.run = create_run_dir(results, run_id, json.dumps(config))
        self.stop = threading.Event()

    def context(self, params: Any = None) -> RunContext:
        log = logging.getLogger(f"em-test.{self.run.id}")
        return RunContext(
            self.run,
            params,
            EventWriter(self.run.events_path),
            Ledger(self.run.records_path),
            StateKeeper(self.run),
            log,
            self.stop,
        )

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in iter_jsonl(self.run.events_path) if e["type"] == type_]

    def records(self) -> list[dict[str, Any]]:
        return list(iter_jsonl(self.run.records_path))


@pytest.fixture
def harness(results_dir: Path):
    return lambda params=None, kind="em": Harness(results_dir, params or {}, kind)
