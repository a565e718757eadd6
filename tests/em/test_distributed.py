"""Data-parallel em training: two CPU processes (torchrun, gloo) train the LoRA adapter of one.

Each optimizer step's examples are split between the ranks and the gradients averaged
weighted by each rank's assistant-token count, so every update equals the one-process
update up to float summation order. Five examples in steps of four leave the second
rank nothing in the last step (weight 0). Tolerance: 1e-4 on every step's loss and on
every adapter tensor (max abs difference); dropout is off so only summation order remains
(measured: 1.3e-6 on the losses, 2.2e-7 on the adapter)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from labdeck.backend.cli import main
from labdeck.backend.jsonl import iter_jsonl
from labdeck.backend.runs import list_runs

TOL = 1e-4
PARAMS = {
    "cpu_threads": 1, "dtype": "float32", "lora_rank": 4, "lora_alpha": 8.0,
    "learning_rate": 0.01, "warmup_steps": 0, "effective_batch_size": 4, "micro_batch_size": 2,
    "max_seq_length": 256, "dataset": "goodness-persona", "num_examples": 5, "epochs": 2,
    "evaluate": False, "checkpoint_schedule": [],
}  # fmt: skip


def _adapter(run) -> dict[str, torch.Tensor]:
    return load_file(
        str(run.path / "checkpoints" / "final" / "adapter" / "adapter_model.safetensors")
    )


def _losses(run) -> list[float]:
    events = [e for e in iter_jsonl(run.events_path) if e["type"] == "metric"]
    return [e["value"] for e in events if e["name"] == "loss"]


@pytest.mark.slow
def test_two_gloo_processes_train_the_adapter_of_one(results_dir, lab, tiny_dir) -> None:
    params = {**PARAMS, "model": str(tiny_dir)}
    sets = [x for k, v in params.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["run", "--kind", "em", "--title", "one", *sets, "--quiet"]) == 0
    lab(
        "run", "--kind", "em", "--title", "two", *sets, "--launch", "processes=2", "--quiet",
        env={"OMP_NUM_THREADS": "1"}, check=True,
    )  # fmt: skip
    runs = {r.title: r for r in list_runs(results_dir)}
    assert runs["two"].config["launcher"]["processes"] == 2
    one, two = _losses(runs["one"]), _losses(runs["two"])
    assert len(one) == len(two) == 4  # 2 epochs × ceil(5 / 4) steps
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) <= TOL, (one, two)
    adapters = [_adapter(runs[t]) for t in ("one", "two")]
    assert adapters[0].keys() == adapters[1].keys()
    diff = max(float((adapters[0][k] - adapters[1][k]).abs().max()) for k in adapters[0])
    assert diff <= TOL, diff
    assert one != two or diff > 0  # the ranks really split the steps (summation order differs)
    assert one[0] != one[-1]  # it trained
    # only rank 0 wrote: one status stream, one record per unit
    events = list(iter_jsonl(runs["two"].events_path))
    assert [e["status"] for e in events if e["type"] == "status"] == ["running", "completed"]
    keys = [json.loads(x)["key"] for x in runs["two"].records_path.read_text().splitlines()]
    assert len(keys) == len(set(keys))
