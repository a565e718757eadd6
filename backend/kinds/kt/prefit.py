"""Fit the model's classical skip terms (PFA's counts, the BKT filter) before training.

Trained jointly with the encoder, these few per-skill weights never converge: early
stopping ends the run while they are still moving, and the encoder's noise moves
them. Fitted alone first (full-batch L-BFGS on the training students: the same
likelihood PFA's regression and BKT's EM maximise), they start the encoder from the
best classical model, and, frozen, leave it only what they cannot explain (students
who differ, order effects, transfer between skills).

When both terms are on, three combinations are fitted (BKT alone, PFA alone, then
both, starting from the two single fits) and the one with the best validation AUC
is kept: on data that BKT generated the counts only add noise, on data with student
differences BKT alone misses the most. The fits are deterministic (full batch, fixed
start), so a restarted or data-parallel run fits the same terms. The batches and
PFA's count features are built once: only the BKT filter depends on the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .batches import trimmed_batch
from .config import Params
from .data import KTData, Sequences
from .losses import Batch
from .metrics import roc_auc
from .model import SKIP_PARAMS, KTTransformer

CHUNK = 512  # sequences per forward pass: bounds memory on large data sets
# stop when an iteration moves the mean log loss by less than this: far below what moves AUC
TOLERANCE = 1e-6
CANDIDATES = {"BKT": (0.0, 1.0), "PFA": (1.0, 0.0), "PFA+BKT": (1.0, 1.0)}  # fitted in this order
# Called as (iterations done, iterations at most) over all candidates' fits.
OnIteration = Callable[[int, int], None]


@dataclass
class PrefitResult:
    kept: str
    valid_auc: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in self.valid_auc.items())
        return f"skip terms fitted on the training students (validation AUC: {scores}); kept {self.kept}"


def skip_parameters(model: KTTransformer) -> list[torch.nn.Parameter]:
    return [w for n, w in model.named_parameters() if n in SKIP_PARAMS]


Chunk = tuple[Batch, torch.Tensor | None]  # a batch and its PFA count features


def _chunks(model: KTTransformer, seqs: Sequences, device: torch.device) -> list[Chunk]:
    out = []
    for start in range(0, len(seqs), CHUNK):
        b = trimmed_batch(seqs, np.arange(start, min(len(seqs), start + CHUNK)), device)
        feats = None
        if model.practice is not None:
            feats = model.practice_features(b.concepts, b.responses)
        out.append((b, feats))
    return out


def _fit(
    model: KTTransformer,
    train: list[Chunk],
    iterations: int,
    device: torch.device,
    on_iteration: Callable[[int], None] | None = None,
) -> None:
    """Full-batch L-BFGS on the mean next-answer log loss of the skip terms alone;
    `on_iteration(n)` hears of each iteration reached (a long fit shows its pace)."""
    params = skip_parameters(model)
    targets = sum(int(b.target_mask.sum()) for b, _ in train)
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_change=TOLERANCE,
    )

    def closure() -> torch.Tensor:
        if on_iteration is not None:
            on_iteration(int(opt.state[params[0]].get("n_iter", 0)))
        opt.zero_grad()
        total = torch.zeros((), device=device)
        for b, feats in train:
            logit = model.skip_logit(b.concepts, b.responses, feats)
            y = b.responses[:, 1:].clamp(min=0).float()
            m = b.target_mask
            loss = F.binary_cross_entropy_with_logits(logit[m], y[m], reduction="sum") / targets
            loss.backward()
            total += loss.detach()
        return total

    opt.step(closure)


@torch.no_grad()
def _valid_auc(model: KTTransformer, valid: list[Chunk]) -> float:
    ys, ps = [], []
    for b, feats in valid:
        m = b.target_mask
        ys.append(b.responses[:, 1:][m].cpu().numpy())
        logit = torch.as_tensor(model.skip_logit(b.concepts, b.responses, feats))
        ps.append(logit[m].cpu().numpy())
    return roc_auc(np.concatenate(ys), np.concatenate(ps))


def _skip_state(model: KTTransformer) -> dict[str, torch.Tensor]:
    return {n: w.detach().clone() for n, w in model.named_parameters() if n in SKIP_PARAMS}


@torch.no_grad()
def _set_skips(model: KTTransformer, state: dict[str, torch.Tensor], name: str) -> None:
    for n, w in model.named_parameters():
        if n in state:
            w.copy_(state[n])
    if model.bkt is not None:
        model.skip_gate.copy_(torch.tensor(CANDIDATES[name]))


def fit_skip_terms(
    model: KTTransformer,
    data: KTData,
    p: Params,
    device: torch.device,
    on_iteration: OnIteration | None = None,
) -> PrefitResult | None:
    """Fit, choose and freeze the skip terms; None when the model has none.
    `on_iteration` hears the L-BFGS iterations done of all candidates' fits."""
    params = skip_parameters(model)
    if not params:
        return None
    start = _skip_state(model)
    both = model.practice is not None and model.bkt is not None
    names = list(CANDIDATES) if both else ["PFA" if model.practice is not None else "BKT"]
    result = PrefitResult(kept=names[0])
    single: dict[str, torch.Tensor] = {}  # each term's weights from its own fit
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    was_training = model.training
    model.eval()  # the skip terms have no dropout; this only keeps the encoder out of it
    try:
        train, valid = _chunks(model, data.train, device), _chunks(model, data.valid, device)
        for name in names:
            # the combination starts from the single fits: each term already near its optimum
            _set_skips(model, {**start, **single} if name == "PFA+BKT" else start, name)
            for w in params:
                w.requires_grad_(True)
            most = p.skip_prefit_iterations
            offset = names.index(name) * most

            def report(n: int, offset: int = offset, most: int = most) -> None:
                if on_iteration is not None:
                    on_iteration(offset + min(n, most), most * len(names))

            with torch.enable_grad():
                _fit(model, train, most, device, report)
            report(most)  # a fit that converged early is done all the same
            state = _skip_state(model)
            if name in ("PFA", "BKT"):
                own = "practice" if name == "PFA" else "bkt"
                single[own] = state[own]
            result.valid_auc[name] = auc = _valid_auc(model, valid)
            if best is None or auc > best[0]:
                best, result.kept = (auc, state), name
    finally:
        model.train(was_training)
    kept = best[1]
    if result.kept == "PFA" and "bkt" in single:
        # the BKT term is off in the prediction (its gate), but its own fit stays in the
        # model: the filter's posterior is what the blended mastery estimate reads
        kept = {**kept, "bkt": single["bkt"]}
    _set_skips(model, kept, result.kept)
    for w in params:
        w.requires_grad_(False)
    return result
