"""Model outputs gathered without gradients, and the interpretability numbers computed from them.

The same gathering serves validation (per epoch), the semantic trajectory and the
final evaluation, so every correlation in a run is computed one way:
- per-student ("mastery_correlation", "gain_correlation"): Pearson of the answered
  skill's mastery (or the practised skill's gain) with the responses, within one
  student, averaged over students; this is the seed's consistency metric;
- pooled ("global_*"): one Pearson over all sampled interactions, optionally against
  residualised responses (minus the student's recent mean) so that a model cannot
  score by merely separating strong from weak students;
- lag: pooled Pearson of the gain at t with the response at t+lag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batches import batch_skips, length_buckets, trimmed_batch
from .data import Sequences
from .losses import Batch
from .metrics import accuracy, mean_or_none, pearson, roc_auc
from .model import KTTransformer


@dataclass
class Collected:
    """One pass's outputs, padded back to the window (nan where no interaction is)."""

    responses: np.ndarray  # [N, T]
    target: np.ndarray  # [N, T-1] bool
    prob: np.ndarray | None  # [N, T-1]; None for a pass that reads only the heads
    m_next: np.ndarray | None  # [N, T-1]
    gain: np.ndarray | None  # [N, T]
    true_mastery: np.ndarray | None  # [N, T]
    # per row, over its interactions: sum and sum of squares of each skill's mastery,
    # and the count; so any subset's variance follows without another pass
    mastery_sum: np.ndarray | None = None  # [N, K] float64
    mastery_sq: np.ndarray | None = None  # [N, K] float64
    mastery_count: np.ndarray | None = None  # [N]

    def rows(self, rows: np.ndarray | slice) -> Collected:
        """The same outputs for a subset of the sequences (rows of one pass)."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return Collected(
            self.responses[rows], self.target[rows], cut(self.prob), cut(self.m_next),
            cut(self.gain), cut(self.true_mastery), cut(self.mastery_sum),
            cut(self.mastery_sq), cut(self.mastery_count),
        )  # fmt: skip

    @property
    def var_stats(self) -> dict[str, float | None]:
        """Variance of each skill's mastery over all interactions: mean, min, max over skills."""
        out: dict[str, float | None] = dict.fromkeys(
            ("mean_mastery_variance", "min_mastery_variance", "max_mastery_variance")
        )
        if self.mastery_count is None or self.mastery_count.sum() <= 1:
            return out
        count = self.mastery_count.sum()
        mean = self.mastery_sum.sum(0) / count
        var = np.maximum(self.mastery_sq.sum(0) / count - mean**2, 0.0)
        out["mean_mastery_variance"] = float(var.mean())
        out["min_mastery_variance"] = float(var.min())
        out["max_mastery_variance"] = float(var.max())
        return out


def to_batch(seqs: Sequences, rows: np.ndarray | slice, device: torch.device) -> Batch:
    """The full padded window of `rows` (what a pass without trimming would run)."""
    return Batch(
        torch.from_numpy(seqs.concepts[rows]).to(device),
        torch.from_numpy(seqs.responses[rows]).to(device),
        torch.from_numpy(seqs.select[rows]).to(device),
    )


@torch.no_grad()
def collect(
    model: KTTransformer,
    seqs: Sequences,
    batch_size: int,
    device: torch.device,
    *,
    predictions: bool = True,
    skips: torch.Tensor | None = None,
) -> Collected:
    """Run the model over `seqs` in eval mode, batches of similar length cut to their
    longest sequence (a causal model's real positions do not see the trailing padding,
    so this equals a pass over the full window up to float rounding).

    `predictions=False` reads only the mastery and gain heads (the global pass needs
    nothing else), skipping the readout and the skip terms; `skips` are the sequences'
    frozen skip logits (`batches.frozen_skip_logits`), when the caller holds them."""
    was_training = model.training
    model.eval()
    n, length = seqs.concepts.shape
    nan = np.float32(np.nan)
    prob = np.full((n, length - 1), nan, dtype=np.float32) if predictions else None
    m_next = gain = m_sum = m_sq = m_count = None
    if model.initial_mastery is not None or model.mastery_head is not None:
        m_next = np.full((n, length - 1), nan, dtype=np.float32)
        m_sum, m_sq = np.zeros((n, model.num_c)), np.zeros((n, model.num_c))
        m_count = np.zeros(n, dtype=np.int64)
    if model.gain_head is not None:
        gain = np.full((n, length), nan, dtype=np.float32)
    try:
        for rows in length_buckets(seqs, batch_size):
            b = trimmed_batch(seqs, rows, device)
            t = b.concepts.shape[1]
            if predictions:
                out = model(b.concepts, b.responses, skip=batch_skips(skips, rows, b))
                prob[rows, : t - 1] = torch.sigmoid(out.logits).cpu().numpy()
                gains, mastery = out.gains, out.mastery
            else:
                _, gains, mastery = model.heads(model.encode(b.concepts, b.responses))
            if mastery is not None:
                idx = b.concepts[:, 1:].clamp(min=0).unsqueeze(-1)
                m_next[rows, : t - 1] = mastery[:, :-1].gather(-1, idx).squeeze(-1).cpu().numpy()
                seen = b.interaction_mask.unsqueeze(-1)
                m = torch.where(seen, mastery.double(), 0.0)
                m_sum[rows] = m.sum(1).cpu().numpy()
                m_sq[rows] = (m * m).sum(1).cpu().numpy()
                m_count[rows] = b.interaction_mask.sum(1).cpu().numpy()
            if gains is not None:
                idx = b.concepts.clamp(min=0).unsqueeze(-1)
                gain[rows, :t] = gains.gather(-1, idx).squeeze(-1).cpu().numpy()
    finally:
        model.train(was_training)
    return Collected(
        responses=seqs.responses,
        target=(seqs.responses[:, 1:] >= 0) & seqs.select[:, 1:],
        prob=prob,
        m_next=m_next,
        gain=gain,
        true_mastery=seqs.true_mastery,
        mastery_sum=m_sum,
        mastery_sq=m_sq,
        mastery_count=m_count,
    )


def prediction_metrics(c: Collected) -> tuple[float, float]:
    y = c.responses[:, 1:][c.target]
    p = c.prob[c.target]
    return roc_auc(y, p), accuracy(y, p)


def per_student_correlations(c: Collected) -> dict[str, float | None]:
    mastery, gain = [], []
    for i in range(len(c.responses)):
        t = c.target[i]
        if c.m_next is not None:
            mastery.append(pearson(c.m_next[i][t], c.responses[i, 1:][t]))
        if c.gain is not None:
            seen = c.responses[i] >= 0
            gain.append(pearson(c.gain[i][seen], c.responses[i][seen]))
    return {
        "mastery_correlation": mean_or_none(mastery),
        "gain_correlation": mean_or_none(gain),
        "correlation_students": sum(v is not None for v in mastery or gain),
    }


def residualised(responses: np.ndarray, window: int) -> np.ndarray:
    """Each response minus the mean of the same student's previous `window` responses
    (nan where there is no previous response)."""
    r = np.where(responses >= 0, responses, 0).astype(np.float64)
    seen = (responses >= 0).astype(np.float64)
    csum = np.cumsum(np.pad(r, ((0, 0), (1, 0))), axis=1)
    ccount = np.cumsum(np.pad(seen, ((0, 0), (1, 0))), axis=1)
    idx = np.arange(responses.shape[1])
    lo = np.maximum(idx - window, 0)
    total = csum[:, idx] - csum[:, lo]
    n = ccount[:, idx] - ccount[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, r - total / n, np.nan)


def pooled_correlations(c: Collected, residual_window: int | None) -> dict[str, float | None]:
    r = c.responses.astype(np.float64)
    if residual_window is not None:
        r = residualised(c.responses, residual_window)
    out: dict[str, float | None] = {"mastery": None, "gain": None}
    if c.m_next is not None:
        ok = c.target & ~np.isnan(r[:, 1:])
        out["mastery"] = pearson(c.m_next[ok], r[:, 1:][ok])
    if c.gain is not None:
        ok = (c.responses >= 0) & ~np.isnan(r)
        out["gain"] = pearson(c.gain[ok], r[ok])
    return out


def lag_correlations(c: Collected, max_lag: int) -> list[float | None]:
    if c.gain is None:
        return []
    out = []
    seen = c.responses >= 0
    for lag in range(1, max_lag + 1):
        pair = seen[:, :-lag] & seen[:, lag:]
        out.append(pearson(c.gain[:, :-lag][pair], c.responses[:, lag:][pair]))
    return out


def true_mastery_correlation(c: Collected) -> float | None:
    """Pooled Pearson of predicted with simulated mastery of the skill answered next."""
    if c.true_mastery is None or c.m_next is None:
        return None
    return pearson(c.m_next[c.target], c.true_mastery[:, 1:][c.target])
