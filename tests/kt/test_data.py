"""The data sources: the simulator's ground truth and the pyKT reader's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labdeck.backend.errors import UserError
from labdeck.backend.kinds.kt.config import Params
from labdeck.backend.kinds.kt.data import load_data
from labdeck.backend.kinds.kt.simulator import simulate


def test_simulated_mastery_grows_with_practice_and_drives_answers():
    pop = simulate(400, 5, 40, guess=0.2, slip=0.1, learn_rate=0.2, repeat_prob=0.5, seed=1)
    assert pop.true_mastery.min() >= 0 and pop.true_mastery.max() <= 1
    # Mastery of a skill never falls between two practices of it.
    for s in range(20):
        for k in range(5):
            m = pop.true_mastery[s][pop.concepts[s] == k]
            assert np.all(np.diff(m) >= 0)
    # Students answer correctly more often when their true mastery is higher.
    hi = pop.true_mastery > np.median(pop.true_mastery)
    assert pop.responses[hi].mean() > pop.responses[~hi].mean() + 0.1
    again = simulate(400, 5, 40, guess=0.2, slip=0.1, learn_rate=0.2, repeat_prob=0.5, seed=1)
    assert np.array_equal(pop.responses, again.responses)


def test_synthetic_split_is_pykt_shaped_and_disjoint():
    p = Params(sim_num_students=100, sim_seq_len=25, seq_len=10, fold=2)
    data = load_data(p)
    assert len(data.test) == 20 * 3  # 20 % of students, each cut into 3 windows (10+10+5)
    assert len(data.valid) == 16 * 3 and len(data.train) == 64 * 3
    assert data.train.concepts.shape[1] == 10
    assert data.test.true_mastery is not None
    other = load_data(Params(sim_num_students=100, sim_seq_len=25, seq_len=10, fold=3))
    assert np.array_equal(data.test.responses, other.test.responses)  # test set never moves
    assert not np.array_equal(data.valid.responses, other.valid.responses)


def _row(fold: int, uid: int, concepts: list[int], responses: list[int], pad: int) -> str:
    c = ",".join(map(str, concepts + [-1] * pad))
    r = ",".join(map(str, responses + [-1] * pad))
    q = ",".join(["-1"] * (len(concepts) + pad))
    m = ",".join(["1"] * len(concepts) + ["-1"] * pad)
    return f'{fold},{uid},"{q}","{c}","{r}","{m}"'


def _write_pykt(folder: Path) -> None:
    folder.mkdir(parents=True)
    head = "fold,uid,questions,concepts,responses,selectmasks"
    rows = [
        _row(f, 100 + i, [i % 4, 1, 2, 3, 1, 0], [1, 0, 1, 1, 0, 1], 4)
        for i, f in enumerate(range(5))
    ]
    rows += [_row(f, 200 + f, [3, 2, 1, 0, 3], [0, 0, 1, 1, 1], 5) for f in range(5)]
    (folder / "train_valid_sequences.csv").write_text("\n".join([head, *rows]) + "\n")
    test = [_row(-1, 300 + i, [0, 5, 1, 2], [1, 1, 0, 1], 6) for i in range(3)]
    (folder / "test_sequences.csv").write_text("\n".join([head, *test]) + "\n")


def test_pykt_reader_uses_folds_strips_padding_and_cuts_windows(tmp_path: Path):
    _write_pykt(tmp_path / "toy")
    p = Params(dataset="toy", data_dir=str(tmp_path), fold=1, seq_len=4)
    data = load_data(p)
    assert data.num_c == 6  # skill 5 appears only in the test file
    # fold 1 holds two students of 6 and 5 interactions: windows 4+2 and 4+1 (the 1 is dropped)
    assert len(data.valid) == 2
    assert len(data.train) == 8  # 4 + 4 students outside fold 1, one full window each
    assert data.valid.concepts[0].tolist() == [1, 1, 2, 3]
    assert (data.valid.responses[:, :3] >= 0).all()
    assert len(data.test) == 3 and data.test.true_mastery is None


def test_pykt_problems_are_one_clear_line(tmp_path: Path):
    # Validation refuses a missing dataset; the loader still names what vanished since
    # (model_copy: parameters validated while the files were there).
    from labdeck.backend.presets import resolve

    with pytest.raises(UserError, match=r"missing: dataset folder not found"):
        resolve("kt", {"dataset": "missing", "data_dir": str(tmp_path)})
    p = Params().model_copy(update={"dataset": "missing", "data_dir": str(tmp_path)})
    with pytest.raises(UserError, match=r"missing.*dataset folder not found"):
        load_data(p)
    _write_pykt(tmp_path / "toy")
    toy = Params(dataset="toy", data_dir=str(tmp_path))
    (tmp_path / "toy" / "test_sequences.csv").unlink()
    with pytest.raises(UserError, match=r"test_sequences\.csv: pyKT file not found"):
        load_data(toy)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train_valid_sequences.csv").write_text('fold,uid,concept\n0,1,"1,2"\n')
    (tmp_path / "bad" / "test_sequences.csv").write_text("uid,concepts,responses\n")
    with pytest.raises(UserError, match=r"train_valid_sequences\.csv: missing column 'concepts'"):
        load_data(Params(dataset="bad", data_dir=str(tmp_path)))
