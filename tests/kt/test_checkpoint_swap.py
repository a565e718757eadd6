"""A kt run killed inside its checkpoint swaps resumes from the right epoch."""

from __future__ import annotations

from labdeck.backend import durable
from labdeck.backend.kinds.kt.experiment import run as kt_run
from labdeck.backend.ledger import unit_key


class Killed(Exception):
    """Stands for a SIGKILL at one point of a swap."""


def test_killed_once_at_every_swap_step_resumes_to_the_uninterrupted_result(harness, tiny_params):
    """One run killed at a different step of the `latest` swap in each epoch, resumed each
    time: it continues from the last complete epoch and no epoch is recorded twice."""
    p = tiny_params(epochs=len(durable.SWAP_STEPS) + 1, sim_num_students=150)
    straight = harness(p, "straight").execute()
    h = harness(p, "killed")
    kills = list(durable.SWAP_STEPS)
    resumed_from = []
    while True:
        ctx, events, ledger = h.context()
        resumed_from.append(len(ledger))

        def kill(name: str, step: str, ckpt=ctx.checkpoints_dir) -> None:
            replacing = (ckpt / "latest").exists() or (ckpt / ".old-latest").exists()
            if kills and name == "latest" and step == kills[0] and replacing:
                raise Killed(kills.pop(0))

        ctx.on_swap_step = kill
        try:
            result = kt_run(ctx)
            break
        except Killed:
            continue
        finally:
            events.close()
            ledger.close()
    assert not kills
    assert result == straight
    # epoch 2 killed before, between and after its two renames, then epoch 3 while the
    # old folder was being removed: each attempt continues after the last complete epoch
    assert resumed_from == [0, 1, 1, 1, 2]
    assert h.record_keys() == [unit_key("epoch", n) for n in range(1, p.epochs + 1)] + [
        unit_key("eval")
    ]
