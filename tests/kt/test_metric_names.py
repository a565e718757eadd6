"""kt's final metrics use snake_case like every kind; runs written with the seed's table
names ("Best Val AUC") still read, compare and reproduce under today's names."""

from __future__ import annotations

import json

from labdeck.backend.compare import compare_runs
from labdeck.backend.jsonio import write_json_atomic
from labdeck.backend.runs import ARTIFACTS, SUMMARY, create_run_dir

OLD = {"Best Val AUC": 0.7412, "Mastery Correlation": 0.5234, "Best Epoch": 9.0}
NEW = {"best_val_auc": 0.7411, "mastery_correlation": 0.5231, "best_epoch": 9.0}


def _run(results, run_id, final, state):
    cfg = {"run_id": run_id, "kind": "kt", "title": "t", "params": {"seed": 1}, "md5": "0" * 32}
    run = create_run_dir(results, run_id, json.dumps(cfg))
    write_json_atomic(run.path / ARTIFACTS / SUMMARY, {"final_metrics": final})
    write_json_atomic(run.path / "state.json", {"started": 1.0, "ended": 2.0, **state})
    return run


def test_old_names_read_and_compare_with_a_new_reproduction(results_dir):
    old = _run(results_dir, "20260101_090000_kt_old_100001", OLD, {"status": "completed"})
    repro = _run(
        results_dir,
        "20260101_090000_kt_old_100001_repro",
        NEW,
        {"status": "completed", "reproduction_of": old.id},
    )
    assert old.summary()["final_metrics"] == {
        "best_val_auc": 0.7412,
        "mastery_correlation": 0.5234,
        "best_epoch": 9.0,
    }
    comparison = compare_runs(old, repro)
    rows = {m.name: m for m in comparison.metrics}
    assert set(rows) == set(NEW)
    assert all(m.verdict == "PASS" for m in rows.values()), comparison.as_dict()
    assert comparison.verdict == "PASS"
    # a real difference still fails under the snake_case declarations (tol 1e-3, epoch exact)
    write_json_atomic(repro.path / ARTIFACTS / SUMMARY, {"final_metrics": {**NEW, "best_epoch": 8}})
    assert compare_runs(old, repro).verdict == "FAIL"


def test_resume_line_says_none_yet_before_a_best_epoch():
    from labdeck.backend.kinds.kt.experiment import best_auc_text

    assert best_auc_text(-1.0) == "none yet" and best_auc_text(None) == "none yet"
    assert best_auc_text(0.71234) == "0.7123"
