"""The reported mastery estimate: the head mixed with the BKT filter's posterior."""

from __future__ import annotations

import numpy as np
import torch
from kt.test_skip_terms import bkt_population

from labdeck.backend.kinds.kt import config
from labdeck.backend.kinds.kt.evaluate import evaluate_model
from labdeck.backend.kinds.kt.mastery import (
    blended,
    choose_weight,
    emission_log_likelihood,
    uses_blend,
)
from labdeck.backend.kinds.kt.semantics import Collected
from labdeck.backend.kinds.kt.simulator import split_population
from labdeck.backend.kinds.kt.train import Trainer, build_model
from labdeck.backend.kinds.spec import with_added_params


def answers_from(state: np.ndarray, guess: float, slip: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(state.shape) < guess + (1 - slip - guess) * state).astype(np.int64)


def pass_of(head: np.ndarray, responses: np.ndarray) -> Collected:
    n, t = responses.shape
    target = np.ones((n, t - 1), dtype=bool)
    return Collected(responses, target, None, head.astype(np.float32), None, None)


def test_emission_likelihood_is_the_bernoulli_log_likelihood():
    y = np.array([1.0, 0.0])
    m = np.array([1.0, 0.0])
    # known answers right unless they slip, unknown ones right when they guess
    expected = (np.log(0.9) + np.log(0.8)) / 2
    assert np.isclose(emission_log_likelihood(m, np.full(2, 0.2), np.full(2, 0.1), y), expected)


def test_the_weight_goes_to_whichever_estimate_generated_the_answers():
    rng = np.random.default_rng(0)
    state = rng.random((400, 30))  # the probability each answer was made with
    noise = rng.random((400, 30))
    responses = answers_from(state, 0.2, 0.1, 1)
    g, s = np.full((400, 29), 0.2), np.full((400, 29), 0.1)
    truth, other = state[:, 1:], noise[:, 1:]
    # the posterior made the answers: the head gets no weight
    assert choose_weight(pass_of(other, responses), truth, g, s) == 0.0
    # the head made them: it gets all of it
    assert choose_weight(pass_of(truth, responses), other, g, s) == 1.0
    # answers made with the mean of the two: a weight near the middle
    mixed = answers_from((state + noise) / 2, 0.2, 0.1, 2)
    assert 0.3 <= choose_weight(pass_of(truth, mixed), other, g, s) <= 0.7
    c = blended(pass_of(truth, responses), other, 0.25)
    assert np.allclose(c.m_next, 0.25 * truth + 0.75 * other)


def test_on_bkt_students_the_estimate_is_at_least_as_close_to_the_state(tiny_params):
    p = tiny_params(epochs=3, seq_len=40, sim_seq_len=40)
    data = split_population(bkt_population(300, 40, seed=5), p, 2, "BKT students")
    trainer = Trainer(p, data, torch.device("cpu"))
    trainer.train_in_memory()
    ev = evaluate_model(trainer.model, data, p, torch.device("cpu"))
    assert ev["mastery_estimate"] == "bkt_blend"
    assert ev["mastery_head_weight"] < 0.5  # the posterior explains BKT's answers best
    assert ev["test_true_mastery_correlation"] > ev["test_head_true_mastery_correlation"]
    head = evaluate_model(
        trainer.model, data, p.model_copy(update={"mastery_estimate": "head"}), torch.device("cpu")
    )
    assert head["test_auc"] == ev["test_auc"]  # only the mastery estimate differs
    assert head["test_true_mastery_correlation"] == ev["test_head_true_mastery_correlation"]


def test_a_run_recorded_before_the_estimate_reports_its_head(tiny_params):
    old = tiny_params().model_dump()
    del old["mastery_estimate"]
    p = config.Params(**with_added_params(config, old))
    assert p.mastery_estimate == "head"
    assert not uses_blend(build_model(p, 4, torch.device("cpu")), p.mastery_estimate)
