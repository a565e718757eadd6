"""Reader for datasets prepared by pyKT's `data_preprocess.py` (e.g. assist2015).

pyKT writes `train_valid_sequences.csv` (with a `fold` column 0-4) and
`test_sequences.csv`; each row holds comma-separated, -1-padded lists. Only the
concept-level columns are used (`questions` may be present and is ignored), so a
folder prepared by pyKT trains here unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import UserError, clip
from .config import Params
from .data import PAD, KTData, windows

TRAIN_VALID = "train_valid_sequences.csv"
TEST = "test_sequences.csv"
REQUIRED = ("uid", "concepts", "responses")
MAX_ID = 2**31 - 1  # concept ids index an embedding table


def _parse_list(text: object, path: Path, row: int, column: str) -> np.ndarray:
    """A pyKT cell: comma-separated whole numbers (`1,5,-1`); anything else names its cell."""
    values = []
    for part in str(text).split(","):
        try:
            number = float(part)
            if not number.is_integer() or abs(number) > MAX_ID:
                raise ValueError
        except ValueError:
            shown = "an empty cell" if text is None or str(text) in ("", "nan") else clip(text, 40)
            raise UserError(
                f"{path}: row {row + 2}, column {column!r}: expected comma-separated integers, "
                f"got {shown}"
            ) from None
        values.append(int(number))
    return np.array(values, dtype=np.int64)


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


@dataclass
class _Parsed:
    """Both files of a pyKT dataset, every cell checked."""

    folder: Path
    folds: np.ndarray
    train_valid: tuple[list, list, list]
    test: tuple[list, list, list]
    num_c: int


def _parse(params: Params) -> _Parsed:
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
    except (ValueError, TypeError, OverflowError):
        raise UserError(f"{tv_path}: column 'fold' must hold integers 0-4") from None
    if params.fold not in set(folds.tolist()):
        raise UserError(
            f"{tv_path}: no rows with fold {params.fold} (folds present: {sorted(set(folds))})"
        )
    tv = _histories(train_valid, tv_path)
    te = _histories(test, test_path)
    if not tv[0]:
        raise UserError(f"{tv_path}: no sequences")
    num_c = int(max(max((c.max() for c in tv[0] + te[0] if len(c)), default=0), 0)) + 1
    return _Parsed(folder, folds, tv, te, num_c)


def load_pykt(params: Params) -> KTData:
    parsed = _parse(params)
    tv_c, tv_r, tv_s = parsed.train_valid

    def pick(items: list, mask: np.ndarray) -> list:
        return [x for x, m in zip(items, mask, strict=True) if m]

    is_valid = parsed.folds == params.fold
    return KTData(
        train=windows(
            pick(tv_c, ~is_valid), pick(tv_r, ~is_valid), pick(tv_s, ~is_valid), params.seq_len
        ),
        valid=windows(
            pick(tv_c, is_valid), pick(tv_r, is_valid), pick(tv_s, is_valid), params.seq_len
        ),
        test=windows(*parsed.test, params.seq_len),
        num_c=parsed.num_c,
        source=f"pyKT {parsed.folder}",
    )


def peek_pykt(params: Params) -> tuple[int, int]:
    """(train/valid rows, skills) after checking both files, their columns and every cell:
    a preset naming a missing or malformed dataset fails at validation, before anything
    is created (the kind's `preflight`), and its dry run never meets a bad cell."""
    parsed = _parse(params)
    return len(parsed.folds), parsed.num_c
