"""The classical skip terms: BKT's forward filter, their prefit, and checkpoint choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labdeck.backend.kinds.kt.model import BKT_CAP, KTTransformer
from labdeck.backend.kinds.kt.prefit import CANDIDATES
from labdeck.backend.kinds.kt.simulator import Population, split_population
from labdeck.backend.kinds.kt.train import Trainer, build_optimizer

TRUE_BKT = np.array([[0.2, 0.15, 0.2, 0.1], [0.5, 0.05, 0.25, 0.05]])  # prior, learn, guess, slip


def bkt_population(students: int, steps: int, seed: int = 0) -> Population:
    """Students answering two skills under TRUE_BKT (the standard BKT process)."""
    rng = np.random.default_rng(seed)
    known = rng.random((students, 2)) < TRUE_BKT[:, 0]
    concepts = rng.integers(0, 2, (students, steps))
    responses = np.empty_like(concepts)
    state = np.empty((students, steps), dtype=np.float32)
    rows = np.arange(students)
    for t in range(steps):
        k = concepts[:, t]
        now = known[rows, k]
        p = np.where(now, 1 - TRUE_BKT[k, 3], TRUE_BKT[k, 2])
        responses[:, t] = rng.random(students) < p
        state[:, t] = now
        known[rows, k] = now | (rng.random(students) < TRUE_BKT[k, 1])
    return Population(concepts, responses, state)


def set_bkt(model: KTTransformer, values: np.ndarray) -> None:
    v = torch.tensor(values, dtype=torch.float32)
    v[:, 2:] /= BKT_CAP
    with torch.no_grad():
        model.bkt.copy_(v.logit())


def reference_filter(skills: list[int], answers: list[int], bkt: np.ndarray) -> list[float]:
    """P(correct) of each answer after the first, by the textbook recursion, one step at a time."""
    known = {k: bkt[k, 0] for k in range(len(bkt))}
    out = []
    for t, (k, r) in enumerate(zip(skills, answers, strict=True)):
        if t:
            out.append(known[k] * (1 - bkt[k, 3]) + (1 - known[k]) * bkt[k, 2])
        _, learn, guess, slip = bkt[k]
        like_known, like_not = (1 - slip, guess) if r else (slip, 1 - guess)
        post = known[k] * like_known / (known[k] * like_known + (1 - known[k]) * like_not)
        known[k] = post + (1 - post) * learn
    return out


def test_bkt_filter_is_the_textbook_recursion_and_ignores_padding(tiny_params):
    p = tiny_params(practice_skip=False, dropout=0.0)
    model = KTTransformer(2, p)
    set_bkt(model, TRUE_BKT)
    rng = np.random.default_rng(3)
    c = rng.integers(0, 2, (4, 12))
    r = rng.integers(0, 2, (4, 12))
    c[3, 8:], r[3, 8:] = -1, -1  # a shorter window, padded
    with torch.no_grad():
        got = torch.sigmoid(model.bkt_logit(torch.from_numpy(c), torch.from_numpy(r))).numpy()
    for i in range(4):
        n = 8 if i == 3 else 12
        want = reference_filter(list(c[i, :n]), list(r[i, :n]), TRUE_BKT)
        np.testing.assert_allclose(got[i, : n - 1], want, rtol=1e-4)


def test_prefit_recovers_the_generating_bkt_and_freezes_it(tiny_params):
    p = tiny_params(practice_skip=False, seq_len=40, epochs=1)
    data = split_population(bkt_population(1500, 40), p, 2, "BKT test population")
    trainer = Trainer(p, data, torch.device("cpu"))
    result = trainer.fit_skips()
    assert result is not None and result.kept == "BKT"
    fitted = torch.sigmoid(trainer.model.bkt.detach()).numpy()
    fitted[:, 2:] *= BKT_CAP
    np.testing.assert_allclose(fitted, TRUE_BKT, atol=0.05)
    # frozen: not trained, not in the optimizer, unchanged by an epoch
    before = trainer.model.bkt.detach().clone()
    assert not trainer.model.bkt.requires_grad
    opt_params = {id(w) for g in trainer.optimizer.param_groups for w in g["params"]}
    assert id(trainer.model.bkt) not in opt_params
    trainer.run_epoch()
    assert torch.equal(trainer.model.bkt, before)
    assert trainer.fit_skips() is None and trainer.prefit is result  # once per run


def test_prefit_keeps_the_combination_the_validation_students_favour(tiny_params):
    p = tiny_params(seq_len=40, skip_prefit_iterations=20)
    data = split_population(bkt_population(600, 40, seed=1), p, 2, "BKT test population")
    trainer = Trainer(p, data, torch.device("cpu"))
    result = trainer.fit_skips()
    assert set(result.valid_auc) == set(CANDIDATES)
    assert result.valid_auc[result.kept] == max(result.valid_auc.values())
    assert trainer.model.skip_gate.tolist() == list(CANDIDATES[result.kept])
    assert result.kept in result.describe()


def test_without_prefit_the_skip_terms_train_at_their_own_rate(tiny_params):
    p = tiny_params(skip_prefit=False, practice_learning_rate=0.05)
    model = KTTransformer(4, p)
    groups = build_optimizer(model, p).param_groups
    skip = [g for g in groups if g["lr"] == 0.05]
    assert len(skip) == 1 and {id(w) for w in skip[0]["params"]} == {
        id(model.practice),
        id(model.bkt),
    }


@pytest.mark.parametrize("after_warmup", [True, False])
def test_best_checkpoint_waits_for_the_constraint_warmup(tiny_params, after_warmup):
    from labdeck.backend.kinds.kt.data import load_data

    p = tiny_params(epochs=4, warmup_constraint_epochs=3, select_after_warmup=after_warmup)
    trainer = Trainer(p, load_data(p), torch.device("cpu"))
    entries = [trainer.run_epoch() for _ in range(4)]
    first = 3 if after_warmup else 1
    assert trainer.first_selectable_epoch() == first
    assert not any(e["improved"] for e in entries[: first - 1])
    assert entries[first - 1]["improved"]
    assert trainer.state.best_epoch >= first


def test_a_run_recorded_before_the_bkt_term_keeps_its_model_and_schedule(tiny_params):
    """An old config.json (no bkt_skip, skip_prefit, select_after_warmup) rebuilds the
    model it trained, so its checkpoints load and its resume continues as it began."""
    from labdeck.backend.kinds.kt import config
    from labdeck.backend.kinds.kt.train import build_model
    from labdeck.backend.kinds.spec import with_added_params

    old = tiny_params().model_dump()
    for name in ("bkt_skip", "skip_prefit", "skip_prefit_iterations", "select_after_warmup"):
        del old[name]
    p = config.Params(**with_added_params(config, old))
    assert (p.bkt_skip, p.skip_prefit, p.select_after_warmup) == (False, False, False)
    model = build_model(p, 4, torch.device("cpu"))
    assert model.bkt is None and "skip_gate" not in model.state_dict()
    assert build_optimizer(model, p).param_groups[1]["params"] == [model.practice]
