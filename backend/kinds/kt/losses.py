"""The training objective: next-response BCE plus the seed's constraint and semantic losses.

Each auxiliary loss states one piece of what "mastery" and "gain" should mean:
- non_negative: raw gain outputs should already be >= 0 (keeps the ReLU from dying);
- monotonicity: mastery should not fall between steps (practice does not unlearn);
- mastery_performance: mastery of the skill about to be answered should match the answer;
- gain_performance: a correct answer should come with a larger gain than a wrong one;
- sparsity: an interaction should not move skills it did not practise;
- consistency: the change in mastery should be the scaled gain (fails once mastery saturates);
- alignment: batch correlation of mastery and gains with responses (reward, so negative);
- lag: gains should predict the student's answers 1..3 steps later;
- retention: the batch mastery correlation should not fall below its best epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import GAIN_SCALE, KTOutput

CONSTRAINTS = (
    "non_negative",
    "monotonicity",
    "mastery_performance",
    "gain_performance",
    "sparsity",
    "consistency",
)
COMPONENTS = ("bce", *CONSTRAINTS, "alignment", "lag", "retention")
SHARES = ("main", "constraint_total", "alignment", "lag", "retention")


@dataclass
class Weights:
    """The weights in force for one epoch (after warm-up, adaptation and rebalancing)."""

    warmup_scale: float
    constraint: dict[str, float]
    alignment: float
    lag: float
    lag_per_step: tuple[float, ...]
    retention: float
    retention_delta: float
    peak_mastery_corr: float | None


@dataclass
class Batch:
    concepts: torch.Tensor  # [B, T] (-1 padded)
    responses: torch.Tensor  # [B, T] (-1 padded)
    select: torch.Tensor  # [B, T] bool

    @property
    def target_mask(self) -> torch.Tensor:
        """Positions 1..T-1 whose response is a prediction target."""
        return (self.responses[:, 1:] >= 0) & self.select[:, 1:]

    @property
    def interaction_mask(self) -> torch.Tensor:
        return self.responses >= 0


def pearson_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """Differentiable Pearson correlation of two flat tensors; None when undefined."""
    if a.numel() < 3:
        return None
    da, db = a - a.mean(), b - b.mean()
    denom = torch.sqrt((da * da).sum() * (db * db).sum())
    if float(denom.detach()) < 1e-12:
        return None
    return (da * db).sum() / denom


def next_skill_mastery(out: KTOutput, batch: Batch) -> torch.Tensor:
    """[B, T-1]: mastery after interaction t of the skill answered at t+1."""
    idx = batch.concepts[:, 1:].clamp(min=0).unsqueeze(-1)
    return out.mastery[:, :-1].gather(-1, idx).squeeze(-1)


def practised_gain(out: KTOutput, batch: Batch) -> torch.Tensor:
    """[B, T]: gain of interaction t on the skill it practised."""
    idx = batch.concepts.clamp(min=0).unsqueeze(-1)
    return out.gains.gather(-1, idx).squeeze(-1)


def _zero(out: KTOutput) -> torch.Tensor:
    return out.logits.new_zeros(())


def compute(
    out: KTOutput, batch: Batch, w: Weights
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
    """Total loss, its weighted components (detached, for the loss shares) and batch correlations."""
    tmask = batch.target_mask
    imask = batch.interaction_mask
    y = batch.responses[:, 1:].clamp(min=0).float()
    r = batch.responses.clamp(min=0).float()
    raw: dict[str, torch.Tensor] = {k: _zero(out) for k in COMPONENTS}
    raw["bce"] = F.binary_cross_entropy_with_logits(out.logits[tmask], y[tmask])
    corr_m = corr_g = None

    if out.mastery is not None:
        m_next = next_skill_mastery(out, batch)[tmask]
        y_t = y[tmask]
        raw["mastery_performance"] = (y_t * (1 - m_next) + (1 - y_t) * m_next).mean()
        both = (imask[:, 1:] & imask[:, :-1]).unsqueeze(-1)
        step = out.mastery[:, 1:] - out.mastery[:, :-1]
        if both.any():
            raw["monotonicity"] = torch.relu(-step).masked_select(both).mean()
        corr_m = pearson_t(m_next, y_t)
        if out.gains is not None and both.any():
            expected = GAIN_SCALE * out.gains[:, 1:]
            raw["consistency"] = (step - expected).abs().masked_select(both).mean()

    if out.gains is not None:
        g = practised_gain(out, batch)
        g_i, r_i = g[imask], r[imask]
        raw["non_negative"] = torch.relu(-out.gains_raw).masked_select(imask.unsqueeze(-1)).mean()
        if (r_i > 0.5).any() and (r_i < 0.5).any():
            raw["gain_performance"] = torch.relu(g_i[r_i < 0.5].mean() - g_i[r_i > 0.5].mean())
        if out.gains.shape[-1] > 1:
            others = (out.gains.sum(-1) - g) / (out.gains.shape[-1] - 1)
            raw["sparsity"] = others[imask].mean()
        corr_g = pearson_t(g_i, r_i)
        lag_terms = []
        for lag, lw in enumerate(w.lag_per_step, start=1):
            if lag >= g.shape[1]:
                break
            pair = imask[:, :-lag] & imask[:, lag:]
            c = pearson_t(g[:, :-lag][pair], r[:, lag:][pair])
            if c is not None:
                lag_terms.append(-lw * c)
        if lag_terms:
            raw["lag"] = torch.stack(lag_terms).sum()

    align = [c for c in (corr_m, corr_g) if c is not None]
    if align:
        raw["alignment"] = -torch.stack(align).mean()
    if corr_m is not None and w.peak_mastery_corr is not None:
        raw["retention"] = torch.relu(w.peak_mastery_corr - corr_m - w.retention_delta)

    weighted = {"bce": raw["bce"]}
    for k in CONSTRAINTS:
        weighted[k] = w.warmup_scale * w.constraint[k] * raw[k]
    weighted["alignment"] = w.alignment * raw["alignment"]
    weighted["lag"] = w.lag * raw["lag"]
    weighted["retention"] = w.retention * raw["retention"]
    total = torch.stack(list(weighted.values())).sum()
    corrs = {
        "alignment_corr_mastery": None if corr_m is None else float(corr_m.detach()),
        "alignment_corr_gain": None if corr_g is None else float(corr_g.detach()),
    }
    return total, {k: v.detach() for k, v in weighted.items()}, corrs


def loss_shares(sums: dict[str, float]) -> dict[str, float]:
    """Each part's signed share of the summed absolute weighted loss (alignment and lag are
    rewards, so their shares are negative while they help)."""
    parts = {
        "main": sums["bce"],
        "constraint_total": sum(sums[k] for k in CONSTRAINTS),
        "alignment": sums["alignment"],
        "lag": sums["lag"],
        "retention": sums["retention"],
    }
    denom = sum(abs(v) for v in parts.values()) or 1.0
    return {k: v / denom for k, v in parts.items()}
