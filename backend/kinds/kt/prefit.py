"""Fit the model's classical skip terms (PFA's counts, the BKT filter) before training.

Trained jointly with the encoder, these few per-skill weights never converge: early
stopping ends the run while they are still moving, and the encoder's noise moves
them. Fitted alone first (full-batch L-BFGS on the training students: the same
likelihood PFA's regression and BKT's EM maximise), they start the encoder from the
best classical model, and, frozen, leave it only what they cannot explain (students
who differ, order effects, transfer between skills).

When both terms are on, three combinations are fitted (both, BKT alone, PFA alone)
and the one with the best validation AUC is kept: on data that BKT generated the
counts only add noise, on data with student differences BKT alone misses the most.
The candidates are deterministic (full batch, fixed start), so a restarted or
data-parallel run fits the same terms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .config import Params
from .data import KTData, Sequences
from .losses import Batch
from .metrics import roc_auc
from .model import SKIP_PARAMS, KTTransformer

CHUNK = 512  # sequences per forward pass: bounds memory on large data sets
CANDIDATES = {"PFA+BKT": (1.0, 1.0), "BKT": (0.0, 1.0), "PFA": (1.0, 0.0)}


@dataclass
class PrefitResult:
    kept: str
    valid_auc: dict[str, float] = field(default_factory=dict)
    iterations: int = 0

    def describe(self) -> str:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in self.valid_auc.items())
        return f"skip terms fitted on the training students (validation AUC: {scores}); kept {self.kept}"


def skip_parameters(model: KTTransformer) -> list[torch.nn.Parameter]:
    return [w for n, w in model.named_parameters() if n in SKIP_PARAMS]


def _chunks(seqs: Sequences, device: torch.device) -> Iterator[Batch]:
    from .train import trimmed_batch

    for start in range(0, len(seqs), CHUNK):
        yield trimmed_batch(seqs, np.arange(start, min(len(seqs), start + CHUNK)), device)


def _fit(model: KTTransformer, train: Sequences, iterations: int, device: torch.device) -> int:
    """Full-batch L-BFGS on the mean next-answer log loss of the skip terms alone."""
    params = skip_parameters(model)
    targets = sum(int(b.target_mask.sum()) for b in _chunks(train, device))
    opt = torch.optim.LBFGS(
        params, lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )
    evaluations = 0

    def closure() -> torch.Tensor:
        nonlocal evaluations
        evaluations += 1
        opt.zero_grad()
        total = torch.zeros((), device=device)
        for b in _chunks(train, device):
            logit = model.skip_logit(b.concepts, b.responses)
            y = b.responses[:, 1:].clamp(min=0).float()
            m = b.target_mask
            loss = F.binary_cross_entropy_with_logits(logit[m], y[m], reduction="sum") / targets
            loss.backward()
            total += loss.detach()
        return total

    opt.step(closure)
    return evaluations


@torch.no_grad()
def _valid_auc(model: KTTransformer, valid: Sequences, device: torch.device) -> float:
    ys, ps = [], []
    for b in _chunks(valid, device):
        m = b.target_mask
        ys.append(b.responses[:, 1:][m].cpu().numpy())
        ps.append(torch.as_tensor(model.skip_logit(b.concepts, b.responses))[m].cpu().numpy())
    return roc_auc(np.concatenate(ys), np.concatenate(ps))


def fit_skip_terms(
    model: KTTransformer, data: KTData, p: Params, device: torch.device
) -> PrefitResult | None:
    """Fit, choose and freeze the skip terms; None when the model has none."""
    params = skip_parameters(model)
    if not params:
        return None
    start = [w.detach().clone() for w in params]
    names = list(CANDIDATES) if model.practice is not None and model.bkt is not None else []
    if not names:  # one term: nothing to choose
        names = ["PFA" if model.practice is not None else "BKT"]
    result = PrefitResult(kept=names[0])
    best: tuple[float, list[torch.Tensor]] | None = None
    was_training = model.training
    model.eval()  # the skip terms have no dropout; this only keeps the encoder out of it
    try:
        for name in names:
            with torch.no_grad():
                for w, w0 in zip(params, start, strict=True):
                    w.copy_(w0)
                if model.bkt is not None:
                    model.skip_gate.copy_(torch.tensor(CANDIDATES[name]))
            for w in params:
                w.requires_grad_(True)
            with torch.enable_grad():
                result.iterations += _fit(model, data.train, p.skip_prefit_iterations, device)
            auc = _valid_auc(model, data.valid, device)
            result.valid_auc[name] = auc
            if best is None or auc > best[0]:
                best = (auc, [w.detach().clone() for w in params])
                result.kept = name
    finally:
        model.train(was_training)
    with torch.no_grad():
        for w, kept in zip(params, best[1], strict=True):
            w.copy_(kept)
        if model.bkt is not None:
            model.skip_gate.copy_(torch.tensor(CANDIDATES[result.kept]))
    for w in params:
        w.requires_grad_(False)
    return result
