"""The local queue: a concurrency limit that holds, one GPU per run, and a queue that
outlives the command that started it."""

from __future__ import annotations

import itertools
import time

from waiting import wait_for

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


def test_separate_detached_runs_share_the_machines_one_slot(results_dir, lab) -> None:
    """Three `run --detach` commands on a machine without a GPU: one runs, two wait
    `queued`, then all three complete, never two at once."""
    from labdeck.backend.runs import list_runs

    no_gpu = {"CUDA_VISIBLE_DEVICES": ""}
    for seed in (1, 2, 3):
        lab(
            "run", "--kind", "counter", "--set", "units=20", "--set", "unit_seconds=0.1",
            "--set", f"seed={seed}", "--detach", "--quiet", env=no_gpu, check=True,
        )  # fmt: skip
    runs = list_runs(results_dir)
    assert len(runs) == 3
    wait_for(lambda: any(r.status() == "running" for r in runs), 60, "a run to start", every=0.1)
    assert sorted(r.status() for r in runs) == ["queued", "queued", "running"]
    wait_for(
        lambda: all(r.status() == "completed" for r in runs),
        120,
        "all three to complete",
        every=0.1,
    )
    spans = sorted((r.state()["attempt_started"], r.state()["ended"]) for r in runs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans


def test_a_queue_killed_outright_shows_and_resume_restarts_it_detached(results_dir, lab) -> None:
    import os
    import signal

    from labdeck.backend.runs import status_label

    p = lab(
        "run", "--kind", "counter", "--set", "units=20", "--set", "unit_seconds=0.1",
        "--grid", "seed=1,2,3", "--detach", "--quiet", env={"CUDA_VISIBLE_DEVICES": ""},
        check=True,
    )  # fmt: skip
    gid = p.stdout.split()[-1]
    group = list_groups(results_dir)[gid]
    wait_for(
        lambda: group.statuses().get("running") == 1, 60, "the first member to start", every=0.1
    )
    driver = group.members[1].state()["queue"]["driver"]
    os.kill(driver, signal.SIGKILL)
    waiting = [r for r in group.members if r.status() == "queued"]
    assert len(waiting) == 2
    wait_for(
        lambda: status_label(waiting[0].state()) == "queued (queue gone)",
        10,
        "the label",
        every=0.1,
    )
    ls = lab("ls", env={"COLUMNS": "200"}, check=True).stdout
    assert ls.count("queued (queue gone)") == 2
    from labdeck.tui.runlist import RunList
    from labdeck.tui.runs_columns import scheduler_text

    rows = RunList(results_dir)
    rows.refresh()
    gone = [row for row in rows.rows.values() if row.queue_gone]
    assert sorted(r.id for r in gone) == sorted(r.id for r in waiting)
    assert "queue gone" in scheduler_text(gone[0], {}, 16).plain  # the dashboard says so
    assert f"labdeck resume {gid}" in ls
    t0 = time.time()
    lab("resume", gid, "--quiet", check=True)
    assert time.time() - t0 < 20  # in the background, not in the foreground
    assert all(status_label(r.state()) != "queued (queue gone)" for r in waiting)
    wait_for(lambda: group.statuses() == {"completed": 3}, 120, "the group to complete", every=0.1)
