"""Training through a hand-built RunContext: learning, interpretability, files, stop/resume."""

from __future__ import annotations

import json

import pytest
import torch

from labdeck.backend.kinds.kt.baselines import frequency_baseline
from labdeck.backend.kinds.kt.data import load_data
from labdeck.backend.kinds.kt.losses import Batch, compute
from labdeck.backend.kinds.kt.model import KTTransformer, count_parameters
from labdeck.backend.kinds.kt.train import Trainer
from labdeck.backend.ledger import unit_key

SEED_TRAJECTORY_FIELDS = {
    "epoch", "mastery_correlation", "gain_correlation", "warmup_scale", "alignment_corr_mastery",
    "alignment_corr_gain", "global_alignment_mastery_corr", "global_alignment_gain_corr",
    "effective_alignment_weight", "peak_mastery_corr", "retention_loss_value", "mean_lag_corr",
    "lag_corr_count", "consistency_loss_weight_current", "sparsity_loss_weight_current",
    "loss_shares", "mean_mastery_variance", "min_mastery_variance", "max_mastery_variance",
    "per_lag_correlations",
}  # fmt: skip


def test_training_learns_beyond_skill_frequency_and_mastery_tracks_the_truth(harness, tiny_params):
    p = tiny_params(epochs=6)
    h = harness(p)
    final = h.execute()
    data = load_data(p)
    freq = frequency_baseline(data.train, data.test, data.num_c)
    assert final["test_auc"] > freq["auc"] + 0.02, (final, freq)
    assert final["true_mastery_correlation"] > 0.2
    # The semantic losses are what make the mastery head mean mastery: without them it drifts.
    off = dict(enhanced_constraints=False, enable_alignment_loss=False, enable_lag_gain_loss=False)
    plain = harness(tiny_params(epochs=6, enable_retention_loss=False, **off), "plain").execute()
    head = "head_true_mastery_correlation"  # the head alone (the reported one blends in BKT)
    assert final[head] > plain[head] + 0.2
    assert final["best_val_auc"] > 0.5
    assert set(final) >= {
        "best_val_auc",
        "best_val_accuracy",
        "mastery_correlation",
        "gain_correlation",
    }

    traj = h.events("trajectory")
    assert [e["epoch"] for e in traj] == list(range(1, 7))
    assert set(traj[-1]) >= SEED_TRAJECTORY_FIELDS
    assert set(traj[-1]["loss_shares"]) == {
        "main",
        "constraint_total",
        "alignment",
        "lag",
        "retention",
    }
    assert [e["warmup_scale"] for e in traj][:3] == [0.5, 1.0, 1.0]
    assert traj[-1]["peak_mastery_corr"] == max(e["mastery_correlation"] for e in traj)
    val_auc = [e for e in h.events("metric") if e["name"] == "val_auc"]
    assert [e["epoch"] for e in val_auc] == list(range(1, 7))
    assert h.record_keys() == [unit_key("epoch", n) for n in range(1, 7)] + [unit_key("eval")]

    art = h.run.path / "artifacts"
    results = json.loads((art / "results.json").read_text())
    assert results["train_history"]["semantic_trajectory"] == [
        {k: v for k, v in e.items() if k not in ("t", "seq", "type")} for e in traj
    ]
    assert len(list(art.glob("repro_results_*.json"))) == 1
    ev = json.loads((art / "eval_results.json").read_text())
    assert ev["test_auc"] == final["test_auc"]
    assert ev["test_correlation_students"] <= p.max_correlation_students
    csv_lines = (art / "metrics_epoch_eval.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and "mastery_correlation" in csv_lines[0]
    assert (art / "trajectories.png").stat().st_size > 10_000


def test_stop_then_resume_ends_exactly_like_an_uninterrupted_run(harness, tiny_params):
    p = tiny_params(epochs=4)
    straight = harness(p, "straight").execute()

    h = harness(p, "stopped")
    ctx, events, ledger = h.context()

    def stop_after_epoch_2(event: dict) -> None:
        if event["type"] == "checkpoint" and event["step"] == 2:
            h.stop.set()

    events.add_listener(stop_after_epoch_2)
    from labdeck.backend.kinds.base import StopRequested
    from labdeck.backend.kinds.kt.experiment import run

    with pytest.raises(StopRequested):
        run(ctx)
    events.close()
    ledger.close()
    assert h.record_keys() == [unit_key("epoch", 1), unit_key("epoch", 2)]
    # A kill between the checkpoint and its record: resume must record epoch 2 without redoing it.
    lines = h.run.records_path.read_text().splitlines(keepends=True)
    h.run.records_path.write_text("".join(lines[:1]))
    h.stop.clear()
    resumed = h.execute()
    assert resumed == straight
    assert h.record_keys() == [unit_key("epoch", n) for n in range(1, 5)] + [unit_key("eval")]


@pytest.mark.parametrize(
    ("mastery", "gain", "emb"),
    [(True, True, "qid"), (True, False, "qid_add"), (False, True, "qid"), (False, False, "qid")],
)
def test_every_head_combination_trains_and_keeps_its_contracts(tiny_params, mastery, gain, emb):
    p = tiny_params(use_mastery_head=mastery, use_gain_head=gain, emb_type=emb)
    model = KTTransformer(8, p)
    assert count_parameters(8, p) == sum(t.numel() for t in model.parameters())
    g = torch.Generator().manual_seed(0)
    c = torch.randint(0, 8, (4, 12), generator=g)
    r = torch.randint(0, 2, (4, 12), generator=g)
    r[0, 9:] = -1
    c[0, 9:] = -1
    out = model(c, r)
    assert out.logits.shape == (4, 11)
    if gain:
        assert (out.gains >= 0).all()
    if mastery:
        assert (out.mastery >= 0).all() and (out.mastery <= 1).all()
    if mastery and gain:
        assert (out.mastery[:, 1:] >= out.mastery[:, :-1]).all()  # accumulated gains never fall
    trainer_weights = Trainer.weights.__get__(_StubTrainer(p))(3)
    total, parts, _ = compute(
        out, Batch(c, r, torch.ones_like(c, dtype=torch.bool)), trainer_weights
    )
    total.backward()
    assert torch.isfinite(total)
    if not mastery:
        assert float(parts["mastery_performance"]) == 0.0


class _StubTrainer:
    """Just the state `Trainer.weights` reads, to test the schedule without data."""

    def __init__(self, p):
        from labdeck.backend.kinds.kt.train import TrainState

        self.p = p
        self.state = TrainState(
            consistency_weight=p.consistency_loss_weight, sparsity_weight=p.sparsity_loss_weight
        )


def test_a_pykt_folder_trains_unchanged(harness, tiny_params, tmp_path):
    """A folder in pyKT's layout (with its questions column and -1 padding) runs end to end."""
    rng = torch.Generator().manual_seed(3)
    folder = tmp_path / "toy2015"
    folder.mkdir()
    for name, n, folds in (
        ("train_valid_sequences.csv", 60, True),
        ("test_sequences.csv", 15, False),
    ):
        lines = ["fold,uid,questions,concepts,responses,selectmasks,is_repeat"]
        for i in range(n):
            length = int(torch.randint(6, 30, (1,), generator=rng))
            pad = 30 - length
            c = torch.randint(0, 6, (length,), generator=rng).tolist() + [-1] * pad
            r = torch.randint(0, 2, (length,), generator=rng).tolist() + [-1] * pad
            m = [1] * length + [-1] * pad

            def cell(xs):
                return '"' + ",".join(map(str, xs)) + '"'

            fold = i % 5 if folds else -1
            lines.append(
                f"{fold},{i},{cell([-1] * 30)},{cell(c)},{cell(r)},{cell(m)},{cell([0] * 30)}"
            )
        (folder / name).write_text("\n".join(lines) + "\n")
    p = tiny_params(dataset="toy2015", data_dir=str(tmp_path), epochs=2)
    final = harness(p).execute()
    assert 0.0 <= final["test_auc"] <= 1.0
    assert "true_mastery_correlation" not in final  # only simulated students have a truth
