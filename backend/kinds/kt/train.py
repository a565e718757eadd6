"""The epoch loop: weights schedule, one epoch of training, validation, the semantic
trajectory entry, and checkpoints that let a killed run continue bit-for-bit.

Everything that influences later epochs (weights, optimizer moments, the RNG that
drives dropout, the adaptive loss weights, the peak correlation, the history) is in
`TrainState` plus the checkpoint, and each epoch's shuffle comes from a generator
seeded by (seed, epoch); so "train epochs 1..n, save, load, train n+1.." equals
"train 1..N" exactly on the same machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import distributed
from ...seeding import set_all_seeds
from .batches import batch_skips, frozen_skip_logits, trimmed_batch
from .config import Params
from .data import KTData, Sequences
from .losses import COMPONENTS, Weights, compute, loss_shares
from .metrics import mean_or_none
from .model import SKIP_PARAMS, KTTransformer
from .prefit import OnIteration, PrefitResult, fit_skip_terms, skip_parameters
from .semantics import (
    collect,
    lag_correlations,
    per_student_correlations,
    pooled_correlations,
    prediction_metrics,
    true_mastery_correlation,
)

STATE_FILE = "state.pt"
BEST_FILE = "model.pt"


def configure_determinism() -> torch.device:
    """Deterministic kernels where torch has them; CUDA needs its workspace setting first."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainState:
    """Everything besides tensors that the next epoch depends on (saved with each checkpoint)."""

    epoch: int = 0  # last completed epoch
    best_val_auc: float = -1.0
    best_val_accuracy: float = 0.0
    best_epoch: int = 0
    epochs_since_best: int = 0
    alignment_decay: float = 1.0
    consistency_weight: float = 0.0
    consistency_rebalanced: bool = False
    sparsity_weight: float = 0.0
    low_variance_epochs: int = 0
    peak_mastery_corr: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def train_batches(seqs: Sequences, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """This epoch's shuffled row batches; a function of (seed, epoch) only, so resume replays it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(len(seqs), generator=g).numpy()
    return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]


def build_optimizer(model: torch.nn.Module, p: Params) -> torch.optim.Optimizer:
    """One optimizer; the skip terms (a handful of logistic/BKT weights per skill, whose
    good values are around 1) get their own learning rate, because at the encoder's
    rate they would still be far from them when early stopping ends the run. With
    `skip_prefit` they are fitted before training and frozen: not in the optimizer."""
    skip = [] if p.skip_prefit else [w for n, w in model.named_parameters() if n in SKIP_PARAMS]
    rest = [w for n, w in model.named_parameters() if n not in SKIP_PARAMS]
    groups: list[dict] = [{"params": rest}]
    if skip:
        groups.append({"params": skip, "lr": p.practice_learning_rate})
    if p.optimizer == "adam":
        return torch.optim.Adam(groups, lr=p.learning_rate, weight_decay=p.weight_decay)
    if p.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=p.learning_rate, weight_decay=p.weight_decay)
    return torch.optim.SGD(groups, lr=p.learning_rate, weight_decay=p.weight_decay, momentum=0.9)


def build_model(p: Params, num_c: int, device: torch.device) -> KTTransformer:
    set_all_seeds(p.seed)
    return KTTransformer(num_c, p).to(device)


class Trainer:
    def __init__(self, p: Params, data: KTData, device: torch.device) -> None:
        self.p = p
        self.data = data
        self.device = device
        self.model = build_model(p, data.num_c, device)
        self.prefit: PrefitResult | None = None
        self._prefit_pending = p.skip_prefit
        if p.skip_prefit:
            for w in skip_parameters(self.model):
                w.requires_grad_(False)
        self.optimizer = build_optimizer(self.model, p)
        self.state = TrainState(
            consistency_weight=p.consistency_loss_weight, sparsity_weight=p.sparsity_loss_weight
        )
        # Fixed subsets: the trajectory must compare the same students every epoch.
        self.semantic_rows = np.arange(min(p.max_semantic_students, len(data.valid)))
        order = np.random.default_rng(p.seed).permutation(len(data.train))
        self.global_rows = np.sort(order[: min(p.alignment_global_students, len(data.train))])
        self._skips: dict[str, torch.Tensor | None] = {}  # frozen skip logits per split

    def frozen_skips(self, split: str) -> torch.Tensor | None:
        """The skip logits of every sequence of `split` ("train", "valid"), once the skip
        terms are fitted and frozen (None before, or when they train with the encoder)."""
        if not self.p.skip_prefit or self._prefit_pending:
            return None
        if split not in self._skips:
            seqs = getattr(self.data, split)
            self._skips[split] = frozen_skip_logits(
                self.model, seqs, self.p.batch_size, self.device
            )
        return self._skips[split]

    def fit_skips(self, on_iteration: OnIteration | None = None) -> PrefitResult | None:
        """Fit the skip terms before the first epoch (once; a resumed run has them in
        its checkpoint). Returns what was fitted, or None when there is nothing to do.
        `on_iteration(done, most)` follows the L-BFGS iterations."""
        if not self._prefit_pending:
            return None
        self._prefit_pending = False
        if self.state.epoch == 0:
            self.prefit = fit_skip_terms(self.model, self.data, self.p, self.device, on_iteration)
        self._skips.clear()
        return self.prefit

    # ------------------------------------------------------------------ schedule
    def first_selectable_epoch(self) -> int:
        """The first epoch that may become the best checkpoint (and from which patience
        counts). With `select_after_warmup`, an epoch before the constraint losses reach
        full weight is never the best: with skip terms carrying the prediction, val AUC
        peaks in the first epochs, before the losses that make the mastery head mean
        mastery have acted, and early stopping would keep an untrained head."""
        p = self.p
        if p.select_after_warmup and p.enhanced_constraints:
            return min(p.warmup_constraint_epochs, p.epochs)
        return 1

    def finished(self) -> bool:
        s = self.state
        return s.epoch >= self.p.epochs or (s.epoch > 0 and s.epochs_since_best >= self.p.patience)

    def weights(self, epoch: int) -> Weights:
        p, s = self.p, self.state
        warm = min(1.0, epoch / p.warmup_constraint_epochs) if p.enhanced_constraints else 0.0
        consistency = s.consistency_weight
        if p.enable_cosine_perf_schedule:
            consistency *= 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(1, p.epochs - 1)))
        constraint = {
            "non_negative": p.non_negative_loss_weight,
            "monotonicity": p.monotonicity_loss_weight,
            "mastery_performance": p.mastery_performance_loss_weight,
            "gain_performance": p.gain_performance_loss_weight,
            "sparsity": s.sparsity_weight,
            "consistency": consistency,
        }
        align = 0.0
        if p.enable_alignment_loss:
            align = (
                p.alignment_weight * min(1.0, epoch / p.alignment_warmup_epochs) * s.alignment_decay
            )
        return Weights(
            warmup_scale=warm,
            constraint=constraint,
            alignment=align,
            lag=p.lag_gain_weight if p.enable_lag_gain_loss else 0.0,
            lag_per_step=(p.lag_l1_weight, p.lag_l2_weight, p.lag_l3_weight)[: p.lag_max_lag],
            retention=p.retention_weight if p.enable_retention_loss else 0.0,
            retention_delta=p.retention_delta,
            peak_mastery_corr=s.peak_mastery_corr,
        )

    # ------------------------------------------------------------------ one epoch
    def train_epoch(
        self,
        epoch: int,
        w: Weights,
        on_batch: Callable[[int, int, torch.Tensor], None] | None = None,
    ) -> tuple[dict[str, float], dict[str, float | None]]:
        """Mean weighted loss components over the epoch, and the last batch's correlations."""
        self.model.train()
        sums = {k: torch.zeros((), device=self.device) for k in COMPONENTS}
        batches = train_batches(self.data.train, self.p.batch_size, self.p.seed, epoch)
        corrs: dict[str, float | None] = {}
        skips = self.frozen_skips("train")
        for i, rows in enumerate(batches, start=1):
            weight = len(rows)
            if distributed.is_distributed():  # data-parallel: this rank's share of the batch
                mine = rows[distributed.shard(len(rows))]
                # a share can be empty (last batch smaller than the ranks): compute, weigh 0
                weight, rows = len(mine), mine if len(mine) else rows[:1]
            batch = trimmed_batch(self.data.train, rows, self.device)
            out = self.model(batch.concepts, batch.responses, batch_skips(skips, rows, batch))
            total, parts, corrs = compute(out, batch, w)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if distributed.is_distributed():
                grads = []
                for prm in self.model.parameters():
                    if not prm.requires_grad:
                        continue
                    if prm.grad is None:
                        prm.grad = torch.zeros_like(prm)
                    grads.append(prm.grad)
                distributed.all_reduce_mean_(grads, weight=weight)
            if self.p.gradient_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.p.gradient_clip)
            self.optimizer.step()
            for k, v in parts.items():
                sums[k] += v
            if on_batch is not None:
                on_batch(i, len(batches), total)
        n = max(1, len(batches))
        return {k: distributed.reduce_mean(float(v) / n) for k, v in sums.items()}, corrs

    def run_epoch(
        self, on_batch: Callable[[int, int, torch.Tensor], None] | None = None
    ) -> dict[str, Any]:
        """Train, validate and measure one epoch; update the state; return its history entry."""
        self.fit_skips()
        p, s = self.p, self.state
        epoch = s.epoch + 1
        w = self.weights(epoch)
        losses, batch_corrs = self.train_epoch(epoch, w, on_batch)

        val = collect(
            self.model, self.data.valid, p.batch_size, self.device, skips=self.frozen_skips("valid")
        )
        val_auc, val_acc = prediction_metrics(val)
        # the semantic students are validation students: their outputs are in `val` already
        semantic = val.rows(self.semantic_rows)
        per_student = per_student_correlations(semantic)
        glob: dict[str, float | None] = {"mastery": None, "gain": None}
        if p.enable_global_alignment_pass:
            pop = collect(
                self.model,
                self.data.train.subset(self.global_rows),
                p.batch_size,
                self.device,
                predictions=False,
            )
            glob = pooled_correlations(
                pop, p.alignment_residual_window if p.use_residual_alignment else None
            )
        lags = lag_correlations(semantic, p.lag_max_lag) if p.enable_lag_gain_loss else []
        shares = loss_shares(losses)

        mastery_corr = per_student["mastery_correlation"]
        if mastery_corr is not None:
            s.peak_mastery_corr = max(mastery_corr, s.peak_mastery_corr or mastery_corr)
        trajectory = {
            "epoch": epoch,
            "mastery_correlation": mastery_corr,
            "gain_correlation": per_student["gain_correlation"],
            "warmup_scale": w.warmup_scale,
            "alignment_corr_mastery": batch_corrs.get("alignment_corr_mastery"),
            "alignment_corr_gain": batch_corrs.get("alignment_corr_gain"),
            "global_alignment_mastery_corr": glob["mastery"],
            "global_alignment_gain_corr": glob["gain"],
            "effective_alignment_weight": w.alignment,
            "peak_mastery_corr": s.peak_mastery_corr,
            "retention_loss_value": losses["retention"],
            "mean_lag_corr": mean_or_none(lags),
            "lag_corr_count": sum(c is not None for c in lags),
            "consistency_loss_weight_current": w.constraint["consistency"],
            "sparsity_loss_weight_current": w.constraint["sparsity"],
            "loss_shares": shares,
            **semantic.var_stats,
            "per_lag_correlations": lags,
            "true_mastery_correlation": true_mastery_correlation(semantic),
        }
        entry = {
            "epoch": epoch,
            "train_loss": sum(losses.values()),
            "train_loss_components": losses,
            "val_auc": val_auc,
            "val_accuracy": val_acc,
            "trajectory": trajectory,
        }
        self._advance(entry, shares, losses)
        return entry

    def _advance(
        self, entry: dict[str, Any], shares: dict[str, float], losses: dict[str, float]
    ) -> None:
        """Fold this epoch into the state: best model, early stopping and the adaptive weights."""
        p, s = self.p, self.state
        s.epoch = entry["epoch"]
        auc = entry["val_auc"]
        eligible = s.epoch >= self.first_selectable_epoch()
        entry["improved"] = bool(eligible and not math.isnan(auc) and auc > s.best_val_auc)
        if entry["improved"]:
            s.best_val_auc, s.best_val_accuracy, s.best_epoch = auc, entry["val_accuracy"], s.epoch
            s.epochs_since_best = 0
        elif eligible:
            s.epochs_since_best += 1
        traj = entry["trajectory"]
        mastery_corr = traj["mastery_correlation"]
        if (
            p.adaptive_alignment
            and abs(shares["alignment"]) > p.alignment_share_cap
            and mastery_corr is not None
            and mastery_corr >= p.alignment_min_correlation
        ):
            s.alignment_decay *= p.alignment_share_decay_factor
        total = sum(abs(v) for v in losses.values()) or 1.0
        if (
            not s.consistency_rebalanced
            and s.epoch >= p.consistency_rebalance_epoch
            and losses["consistency"] / total > p.consistency_rebalance_threshold
        ):
            s.consistency_weight = p.consistency_rebalance_new_weight
            s.consistency_rebalanced = True
        variance = traj["mean_mastery_variance"]
        s.low_variance_epochs = (
            s.low_variance_epochs + 1 if variance is not None and variance < p.variance_floor else 0
        )
        if s.low_variance_epochs >= p.variance_floor_patience:
            s.sparsity_weight *= p.variance_floor_reduce_factor
            s.low_variance_epochs = 0
        s.history.append(entry)

    def train_in_memory(self) -> None:
        """Train to the end and keep the best epoch's weights, as a run's best checkpoint
        does, without a run directory (benchmarks and tests)."""
        best = None
        while not self.finished():
            if self.run_epoch()["improved"]:
                best = {k: v.clone() for k, v in self.model.state_dict().items()}
        if best is not None:
            self.model.load_state_dict(best)

    # ------------------------------------------------------------------ checkpoints
    def save_latest(self, folder: Path) -> None:
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "state": asdict(self.state),
            },
            folder / STATE_FILE,
        )

    def save_best(self, folder: Path) -> None:
        torch.save(
            {
                "model": self.model.state_dict(),
                "epoch": self.state.epoch,
                "val_auc": self.state.best_val_auc,
            },
            folder / BEST_FILE,
        )

    def load_latest(self, folder: Path) -> bool:
        path = folder / STATE_FILE
        if not path.is_file():
            return False
        blob = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(blob["model"])
        self.optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["torch_rng"].cpu())
        if blob["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in blob["cuda_rng"]])
        self.state = TrainState(**blob["state"])
        self._skips.clear()
        return True
