"""Batches cut to their real length, and the frozen skip terms computed once per sequence.

Windows are padded to `seq_len`, but a causal model's outputs at real positions do not
depend on the padding that trails them, so every pass (training, validation, the
semantic and global passes, the final evaluation) runs on batches cut to their longest
sequence; evaluation also groups sequences of similar length (`length_buckets`), so a
data set of mostly short windows is not run at the length of its longest one.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import Sequences
from .losses import Batch
from .model import KTTransformer

# Cached skip logits per data set at most this many elements (4 bytes each); a larger
# data set computes them per batch, as without the cache.
SKIP_CACHE_LIMIT = 50_000_000


def trimmed_batch(seqs: Sequences, rows: np.ndarray, device: torch.device) -> Batch:
    """A batch cut to its longest sequence: padding only trails, so nothing real is lost."""
    length = int((seqs.responses[rows] >= 0).sum(1).max())
    length = max(length, 2)
    return Batch(
        torch.from_numpy(seqs.concepts[rows, :length]).to(device),
        torch.from_numpy(seqs.responses[rows, :length]).to(device),
        torch.from_numpy(seqs.select[rows, :length]).to(device),
    )


def length_buckets(seqs: Sequences, batch_size: int) -> list[np.ndarray]:
    """Row batches of similar length (longest first), for passes whose order is free."""
    lengths = (seqs.responses >= 0).sum(1)
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def frozen_skip_logits(
    model: KTTransformer, seqs: Sequences, batch_size: int, device: torch.device
) -> torch.Tensor | None:
    """[N, L-1]: each sequence's skip logit, when the skip terms are frozen (after the
    prefit they depend on the data only, so computing them once per epoch and pass,
    a sequential filter over every step, is repeated work); None when the model has no
    skip terms, they still train, or the data set is too large to hold them."""
    terms = [w for w in (model.practice, model.bkt) if w is not None]
    n, length = seqs.concepts.shape
    if not terms or any(w.requires_grad for w in terms) or n * length > SKIP_CACHE_LIMIT:
        return None
    out = torch.zeros(n, length - 1, device=device)
    for rows in length_buckets(seqs, max(batch_size, 256)):
        b = trimmed_batch(seqs, rows, device)
        t = b.concepts.shape[1]
        out[torch.from_numpy(rows).to(device), : t - 1] = model.skip_logit(b.concepts, b.responses)
    return out


def batch_skips(skips: torch.Tensor | None, rows: np.ndarray, batch: Batch) -> torch.Tensor | None:
    """The cached skip logits of `rows`, cut to the batch's length."""
    if skips is None:
        return None
    index = torch.from_numpy(np.asarray(rows)).to(skips.device)
    return skips[index, : batch.concepts.shape[1] - 1]
