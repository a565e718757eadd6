"""Data-parallel kt: two CPU processes (torchrun, gloo) train to the metrics of one.

Each global batch is split between the ranks and the gradients are averaged weighted by
shard size, so the update equals the one-process update up to the losses that are not
plain means over items (correlation terms) and float summation order. Tolerance: 0.01
on AUCs and accuracies, 0.05 on correlations; dropout is off so only that remains."""

from __future__ import annotations

import json

import pytest

from labdeck.backend.cli import main
from labdeck.backend.runs import list_runs

TOL = {"auc": 0.01, "accuracy": 0.01, "correlation": 0.05}

SETS = {
    "sim_num_students": 120,
    "sim_num_skills": 6,
    "sim_seq_len": 20,
    "seq_len": 20,
    "d_model": 16,
    "n_heads": 2,
    "num_encoder_blocks": 1,
    "d_ff": 32,
    "dropout": 0.0,
    "epochs": 2,
    "batch_size": 16,
    "max_semantic_students": 30,
    "alignment_global_students": 60,
    "max_correlation_students": 40,
    "warmup_constraint_epochs": 2,
    "alignment_warmup_epochs": 2,
    "consistency_rebalance_epoch": 2,
}


@pytest.mark.slow
def test_two_gloo_processes_train_kt_to_the_metrics_of_one(results_dir, lab) -> None:
    sets = [x for k, v in SETS.items() for x in ("--set", f"{k}={v}")]
    env = {"OMP_NUM_THREADS": "1"}
    assert main(["run", "--kind", "kt", "--title", "one", *sets, "--quiet"]) == 0
    lab(
        "run", "--kind", "kt", "--title", "two", *sets, "--launch", "processes=2", "--quiet",
        env=env, check=True,
    )  # fmt: skip
    runs = {r.title: r for r in list_runs(results_dir)}
    one, two = (runs[t].summary()["final_metrics"] for t in ("one", "two"))
    assert runs["two"].config["launcher"]["processes"] == 2
    assert one.keys() == two.keys()
    for name, a in one.items():
        tol = next((t for k, t in TOL.items() if k in name.lower()), 0.0)
        assert abs(a - two[name]) <= tol, (name, a, two[name])
    assert one != two  # the two-process run really split the batches
    # only rank 0 wrote: one status stream, one record per unit, no second runner
    events = [json.loads(x) for x in runs["two"].events_path.read_text().splitlines()]
    assert [e["status"] for e in events if e["type"] == "status"] == ["running", "completed"]
    keys = [json.loads(x)["key"] for x in runs["two"].records_path.read_text().splitlines()]
    assert len(keys) == len(set(keys))
