"""The skip-term prefit is a phase of its own with progress per L-BFGS iteration, so a
minute-long fit shows its pace and the time left instead of nothing."""

from __future__ import annotations

from labdeck.backend.display import progress_text


def test_prefit_reports_each_lbfgs_iteration_as_a_phase(harness, tiny_params) -> None:
    p = tiny_params(epochs=1, skip_prefit_iterations=8)
    h = harness(p)
    h.execute()
    phases = [e["name"] for e in h.events("phase")]
    assert phases[:2] == ["prefit", "train"]
    (prefit,) = [e for e in h.events("phase") if e["name"] == "prefit"]
    assert prefit["total"] == 8 * 3  # three candidate fits (BKT, PFA, both) of 8 at most
    done = [e["done"] for e in h.events("progress") if e["phase"] == "prefit"]
    assert len(done) > 3 and done == sorted(done) and done[-1] == 24
    assert len(set(done)) == len(done)  # one event per iteration reached, not per evaluation
    st = h.run.state()
    assert st["phases"]["prefit"] == {"done": 24, "total": 24}
    assert not progress_text(st).startswith("prefit")  # the run went on to train and eval
