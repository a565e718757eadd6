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

from .data import Sequences
from .losses import Batch
from .metrics import accuracy, mean_or_none, pearson, roc_auc
from .model import KTTransformer


@dataclass
class Collected:
    responses: np.ndarray  # [N, T]
    target: np.ndarray  # [N, T-1] bool
    prob: np.ndarray  # [N, T-1]
    m_next: np.ndarray | None  # [N, T-1]
    gain: np.ndarray | None  # [N, T]
    true_mastery: np.ndarray | None  # [N, T]
    var_stats: dict[str, float | None]


def to_batch(seqs: Sequences, rows: np.ndarray | slice, device: torch.device) -> Batch:
    return Batch(
        torch.from_numpy(seqs.concepts[rows]).to(device),
        torch.from_numpy(seqs.responses[rows]).to(device),
        torch.from_numpy(seqs.select[rows]).to(device),
    )


@torch.no_grad()
def collect(
    model: KTTransformer, seqs: Sequences, batch_size: int, device: torch.device
) -> Collected:
    was_training = model.training
    model.eval()
    probs, m_nexts, gains = [], [], []
    k = model.num_c
    sums, sqs, count = np.zeros(k), np.zeros(k), 0
    try:
        for start in range(0, len(seqs), batch_size):
            batch = to_batch(seqs, slice(start, start + batch_size), device)
            out = model(batch.concepts, batch.responses)
            probs.append(torch.sigmoid(out.logits).cpu().numpy())
            if out.mastery is not None:
                idx = batch.concepts[:, 1:].clamp(min=0).unsqueeze(-1)
                m_nexts.append(out.mastery[:, :-1].gather(-1, idx).squeeze(-1).cpu().numpy())
                valid = out.mastery[batch.interaction_mask].double().cpu().numpy()  # [n, K]
                sums += valid.sum(0)
                sqs += (valid * valid).sum(0)
                count += valid.shape[0]
            if out.gains is not None:
                idx = batch.concepts.clamp(min=0).unsqueeze(-1)
                gains.append(out.gains.gather(-1, idx).squeeze(-1).cpu().numpy())
    finally:
        model.train(was_training)
    var_stats: dict[str, float | None] = dict.fromkeys(
        ("mean_mastery_variance", "min_mastery_variance", "max_mastery_variance")
    )
    if count > 1:
        var = np.maximum(sqs / count - (sums / count) ** 2, 0.0)
        var_stats = {
            "mean_mastery_variance": float(var.mean()),
            "min_mastery_variance": float(var.min()),
            "max_mastery_variance": float(var.max()),
        }
    return Collected(
        responses=seqs.responses,
        target=(seqs.responses[:, 1:] >= 0) & seqs.select[:, 1:],
        prob=np.concatenate(probs) if probs else np.zeros((0, seqs.concepts.shape[1] - 1)),
        m_next=np.concatenate(m_nexts) if m_nexts else None,
        gain=np.concatenate(gains) if gains else None,
        true_mastery=seqs.true_mastery,
        var_stats=var_stats,
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
