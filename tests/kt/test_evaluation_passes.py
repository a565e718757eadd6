"""Evaluation passes cut to the real length equal passes over the full padded window."""

from __future__ import annotations

import numpy as np
import torch

from labdeck.backend.kinds.kt.batches import frozen_skip_logits, length_buckets
from labdeck.backend.kinds.kt.data import load_data
from labdeck.backend.kinds.kt.semantics import (
    Collected,
    collect,
    per_student_correlations,
    pooled_correlations,
    prediction_metrics,
    to_batch,
)
from labdeck.backend.kinds.kt.train import Trainer

TOL = 1e-5


@torch.no_grad()
def untrimmed(model, seqs, batch_size: int) -> Collected:
    """The pass as a plain loop runs it: every batch at the full window, in row order."""
    model.eval()
    probs, m_next, gains, masteries = [], [], [], []
    for start in range(0, len(seqs), batch_size):
        b = to_batch(seqs, slice(start, start + batch_size), torch.device("cpu"))
        out = model(b.concepts, b.responses)
        probs.append(torch.sigmoid(out.logits))
        idx = b.concepts[:, 1:].clamp(min=0).unsqueeze(-1)
        m_next.append(out.mastery[:, :-1].gather(-1, idx).squeeze(-1))
        gains.append(out.gains.gather(-1, b.concepts.clamp(min=0).unsqueeze(-1)).squeeze(-1))
        masteries.append(out.mastery)
    mastery = torch.cat(masteries).double()
    seen = torch.from_numpy(seqs.responses >= 0).unsqueeze(-1)
    m = torch.where(seen, mastery, 0.0)
    return Collected(
        seqs.responses, (seqs.responses[:, 1:] >= 0) & seqs.select[:, 1:],
        torch.cat(probs).numpy(), torch.cat(m_next).numpy(), torch.cat(gains).numpy(),
        seqs.true_mastery, m.sum(1).numpy(), (m * m).sum(1).numpy(), seen[..., 0].sum(1).numpy(),
    )  # fmt: skip


def close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) < TOL


def test_trimmed_bucketed_passes_equal_the_full_window(tiny_params):
    # windows of 40 over histories of 50: a full window and a 10-step one per student,
    # padded to 40, so trimming and bucketing by length both change the batches
    p = tiny_params(sim_seq_len=50, seq_len=40, epochs=2)
    data = load_data(p)
    lengths = (data.valid.responses >= 0).sum(1)
    assert set(lengths) == {10, 40}
    assert len({int(lengths[r].max()) for r in length_buckets(data.valid, 16)}) == 2
    trainer = Trainer(p, data, torch.device("cpu"))
    trainer.run_epoch()  # fitted, frozen skip terms and a trained encoder
    model = trainer.model
    skips = trainer.frozen_skips("valid")
    assert skips is not None
    for kwargs in ({}, {"skips": skips}):
        fast = collect(model, data.valid, p.batch_size, torch.device("cpu"), **kwargs)
        ref = untrimmed(model, data.valid, p.batch_size)
        t = ref.target
        np.testing.assert_allclose(fast.prob[t], ref.prob[t], atol=TOL)
        np.testing.assert_allclose(fast.m_next[t], ref.m_next[t], atol=TOL)
        seen = data.valid.responses >= 0
        np.testing.assert_allclose(fast.gain[seen], ref.gain[seen], atol=TOL)
        assert np.allclose(prediction_metrics(fast), prediction_metrics(ref), atol=TOL)
        for key, value in fast.var_stats.items():
            assert close(value, ref.var_stats[key]), key
        a, b = per_student_correlations(fast), per_student_correlations(ref)
        assert close(a["mastery_correlation"], b["mastery_correlation"])
        assert close(a["gain_correlation"], b["gain_correlation"])
    # the heads-only pass (global alignment) reads the same mastery and gains
    heads = collect(model, data.valid, p.batch_size, torch.device("cpu"), predictions=False)
    assert heads.prob is None
    for window in (None, 5):
        g, r = pooled_correlations(heads, window), pooled_correlations(ref, window)
        assert close(g["mastery"], r["mastery"]) and close(g["gain"], r["gain"])
    # a subset of one pass is the pass over the subset
    rows = np.arange(7)
    sub, alone = fast.rows(rows), collect(model, data.valid.subset(rows), 4, torch.device("cpu"))
    np.testing.assert_allclose(sub.prob[sub.target], alone.prob[alone.target], atol=TOL)
    for key, value in sub.var_stats.items():
        assert close(value, alone.var_stats[key]), key


def test_frozen_skip_logits_equal_the_model_computing_them(tiny_params):
    p = tiny_params(sim_seq_len=50, seq_len=40)
    data = load_data(p)
    trainer = Trainer(p, data, torch.device("cpu"))
    assert trainer.frozen_skips("train") is None  # not fitted yet: nothing to cache
    trainer.fit_skips()
    cached = frozen_skip_logits(trainer.model, data.train, 16, torch.device("cpu"))
    b = to_batch(data.train, slice(0, 64), torch.device("cpu"))
    direct = trainer.model.skip_logit(b.concepts, b.responses)
    t = b.target_mask
    torch.testing.assert_close(cached[:64][t], direct[t], atol=1e-6, rtol=0)
    trainer.model.bkt.requires_grad_(True)  # skip terms that train are never cached
    assert frozen_skip_logits(trainer.model, data.train, 16, torch.device("cpu")) is None
