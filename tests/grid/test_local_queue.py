"""The local queue: a concurrency limit that holds, one GPU per run, and a queue that
outlives the command that started it."""

from __future__ import annotations

import time

from labdeck.backend.groups import list_groups


def test_detached_queue_pins_one_gpu_per_run_and_never_exceeds_the_limit(results_dir, lab) -> None:
    # Two visible GPUs → default concurrency 2, each run pinned to one of them.
    t0 = time.time()
    p = lab(
        "run", "--kind", "counter", "--set", "units=4", "--set", "unit_seconds=0.15",
        "--grid", "seed=1,2,3,4", "--detach", "--quiet",
        env={"CUDA_VISIBLE_DEVICES": "3,5"}, check=True,
    )  # fmt: skip
    launched = time.time() - t0
    gid = p.stdout.split()[-1]
    group = list_groups(results_dir)[gid]
    deadline = time.time() + 60
    while time.time() < deadline and group.statuses().get("completed", 0) < 4:
        time.sleep(0.2)
    assert group.statuses() == {"completed": 4}
    # the command returned long before the runs were done: the queue drove them
    spans = [(r.state()["attempt_started"], r.state()["ended"]) for r in group.members]
    assert launched < max(e for _, e in spans) - t0
    assert sorted(r.state()["devices"] for r in group.members) == ["3", "3", "5", "5"]
    points = sorted({t for span in spans for t in span})
    overlap = [sum(s <= t < e for s, e in spans) for t in points]
    assert max(overlap) == 2, overlap
