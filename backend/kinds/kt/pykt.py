"""Reader for datasets prepared by pyKT's `data_preprocess.py` (e.g. assist2015).

pyKT writes `train_valid_sequences.csv` (with a `fold` column 0-4) and
`test_sequences.csv`; each row holds comma-separated, -1-padded lists. Only the
concept-level columns are used (`questions` may be present and is ignored), so a
folder prepared by pyKT trains here unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import UserError
from .config import Params
from .data import PAD, KTData, windows

TRAIN_VALID = "train_valid_sequences.csv"
TEST = "test_sequences.csv"
REQUIRED = ("uid", "concepts", "responses")


def _parse_list(text: object, path: Path, row: int, column: str) -> np.ndarray:
    try:
        return np.array([int(float(v)) for v in str(text).split(",")], dtype=np.int64)
    except ValueError:
        raise UserError(
            f"{path}: row {row + 2}, column {column!r}: expected comma-separated integers, "
            f"got {str(text)[:40]!r}"
        ) from None


def _read(path: Path, need_fold: bool) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(
            f"{path}: pyKT file not found; prepare the dataset with pyKT's data_preprocess.py "
            f"or set data_dir/dataset to the folder holding {TRAIN_VALID} and {TEST}"
        )
    try:
        frame = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable csv ({exc})") from None
    required = ("fold", *REQUIRED) if need_fold else REQUIRED
    for column in required:
        if column not in frame.columns:
            raise UserError(
                f"{path}: missing column {column!r}; expected pyKT columns "
                f"{', '.join(required)}[, selectmasks] (found: {', '.join(frame.columns)})"
            )
    return frame


def _histories(frame: pd.DataFrame, path: Path) -> tuple[list, list, list]:
    """Per row: concepts, responses and target mask with pyKT's -1 padding stripped."""
    concepts, responses, selects = [], [], []
    has_mask = "selectmasks" in frame.columns
    for i, row in enumerate(frame.itertuples(index=False)):
        c = _parse_list(row.concepts, path, i, "concepts")
        r = _parse_list(row.responses, path, i, "responses")
        if len(c) != len(r):
            raise UserError(
                f"{path}: row {i + 2}: concepts has {len(c)} entries but responses has {len(r)}"
            )
        s = _parse_list(row.selectmasks, path, i, "selectmasks") if has_mask else (r != PAD)
        if len(s) != len(r):
            raise UserError(f"{path}: row {i + 2}: selectmasks length differs from responses")
        keep = r != PAD
        c, r, s = c[keep], r[keep], np.asarray(s)[keep] == 1
        if (c < 0).any() or not np.isin(r, (0, 1)).all():
            raise UserError(
                f"{path}: row {i + 2}: concepts must be >= 0 and responses 0/1 outside padding"
            )
        concepts.append(c)
        responses.append(r)
        selects.append(s)
    return concepts, responses, selects


def load_pykt(params: Params) -> KTData:
    folder = Path(params.data_dir) / params.dataset
    if not folder.is_dir():
        raise UserError(
            f"{folder}: dataset folder not found (dataset={params.dataset!r}, "
            f"data_dir={params.data_dir!r}); expected pyKT's {TRAIN_VALID} and {TEST} inside"
        )
    tv_path, test_path = folder / TRAIN_VALID, folder / TEST
    train_valid, test = _read(tv_path, need_fold=True), _read(test_path, need_fold=False)
    try:
        folds = train_valid["fold"].astype(int).to_numpy()
    except ValueError:
        raise UserError(f"{tv_path}: column 'fold' must hold integers 0-4") from None
    if params.fold not in set(folds.tolist()):
        raise UserError(
            f"{tv_path}: no rows with fold {params.fold} (folds present: {sorted(set(folds))})"
        )

    tv_c, tv_r, tv_s = _histories(train_valid, tv_path)
    te_c, te_r, te_s = _histories(test, test_path)
    if not tv_c:
        raise UserError(f"{tv_path}: no sequences")

    def pick(items: list, mask: np.ndarray) -> list:
        return [x for x, m in zip(items, mask, strict=True) if m]

    is_valid = folds == params.fold
    num_c = int(max(max((c.max() for c in tv_c + te_c if len(c)), default=0), 0)) + 1
    return KTData(
        train=windows(
            pick(tv_c, ~is_valid), pick(tv_r, ~is_valid), pick(tv_s, ~is_valid), params.seq_len
        ),
        valid=windows(
            pick(tv_c, is_valid), pick(tv_r, is_valid), pick(tv_s, is_valid), params.seq_len
        ),
        test=windows(te_c, te_r, te_s, params.seq_len),
        num_c=num_c,
        source=f"pyKT {folder}",
    )


def peek_pykt(params: Params) -> tuple[int, int]:
    """(train/valid rows, skills) after checking both files and their columns, for dry runs:
    a preset naming a missing or malformed dataset fails before anything is launched."""
    folder = Path(params.data_dir) / params.dataset
    tv = _read(folder / TRAIN_VALID, need_fold=True)
    te = _read(folder / TEST, need_fold=False)
    top = 0
    for frame in (tv, te):
        for text in frame["concepts"]:
            top = max(top, max(int(float(v)) for v in str(text).split(",")))
    return len(tv), top + 1
