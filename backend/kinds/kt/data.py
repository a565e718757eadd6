"""The data every `kt` run trains on: padded sequence arrays split like pyKT.

Both sources (the simulator and pyKT's csv files) end up as `Sequences`, so the
trainer, the evaluation and the baselines never know where the data came from.
pyKT's split is kept: a held-out test set of whole students plus 5 folds of the
rest; fold `f` is validation, the other four are training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Params, is_synthetic

PAD = -1
N_FOLDS = 5
MIN_INTERACTIONS = 3  # pyKT drops windows shorter than this


@dataclass
class Sequences:
    """Rows are student windows of at most `seq_len` interactions, padded with -1.

    `select` marks the positions whose response counts as a prediction target
    (pyKT's selectmasks); `true_mastery` exists only for simulated students.
    """

    concepts: np.ndarray  # int64 [N, L]
    responses: np.ndarray  # int64 [N, L]
    select: np.ndarray  # bool [N, L]
    true_mastery: np.ndarray | None = None  # float32 [N, L]

    def __len__(self) -> int:
        return int(self.concepts.shape[0])

    def subset(self, rows: np.ndarray) -> Sequences:
        tm = None if self.true_mastery is None else self.true_mastery[rows]
        return Sequences(self.concepts[rows], self.responses[rows], self.select[rows], tm)

    @property
    def interactions(self) -> int:
        return int((self.responses != PAD).sum())


@dataclass
class KTData:
    train: Sequences
    valid: Sequences
    test: Sequences
    num_c: int
    source: str

    def describe(self) -> str:
        return (
            f"{self.source}: {self.num_c} skills; train {len(self.train)} / valid {len(self.valid)}"
            f" / test {len(self.test)} sequences ({self.train.interactions} train interactions)"
        )


def windows(
    concepts: list[np.ndarray],
    responses: list[np.ndarray],
    selects: list[np.ndarray],
    seq_len: int,
    true_mastery: list[np.ndarray] | None = None,
) -> Sequences:
    """Cut each student's history into consecutive windows of `seq_len` and pad them.

    Windows shorter than pyKT's minimum of 3 interactions carry no usable target
    after the first step, so they are dropped, as pyKT does.
    """
    rows_c, rows_r, rows_s, rows_m = [], [], [], []
    for i, (c, r, s) in enumerate(zip(concepts, responses, selects, strict=True)):
        for start in range(0, len(c), seq_len):
            end = min(start + seq_len, len(c))
            if end - start < MIN_INTERACTIONS:
                continue
            rows_c.append(c[start:end])
            rows_r.append(r[start:end])
            rows_s.append(s[start:end])
            if true_mastery is not None:
                rows_m.append(true_mastery[i][start:end])
    n = len(rows_c)
    out_c = np.full((n, seq_len), PAD, dtype=np.int64)
    out_r = np.full((n, seq_len), PAD, dtype=np.int64)
    out_s = np.zeros((n, seq_len), dtype=bool)
    out_m = np.zeros((n, seq_len), dtype=np.float32) if true_mastery is not None else None
    for j in range(n):
        k = len(rows_c[j])
        out_c[j, :k], out_r[j, :k], out_s[j, :k] = rows_c[j], rows_r[j], rows_s[j]
        if out_m is not None:
            out_m[j, :k] = rows_m[j]
    return Sequences(out_c, out_r, out_s, out_m)


def load_data(params: Params) -> KTData:
    """The train/valid/test split that `params` describes (simulated or read from pyKT files)."""
    if is_synthetic(params):
        from .simulator import simulate_split

        return simulate_split(params)
    from .pykt import load_pykt

    return load_pykt(params)
