"""Simulated students whose true mastery is known, so interpretability can be checked.

Each student has an ability and each skill a difficulty; mastery of a skill starts
from their difference and closes a fraction of its gap to 1 with every practice
(faster for abler students). An answer is correct with probability
`guess + (1 - guess - slip) * mastery`. Students tend to practise one skill several
times in a row, as in tutoring logs, which gives sequences a model can exploit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Params
from .data import N_FOLDS, KTData, Sequences, windows

TEST_FRACTION = 0.2  # pyKT holds out 20 % of the students as the test set


@dataclass
class Population:
    """Whole simulated histories (one row per student, no padding: all have the same length)."""

    concepts: np.ndarray  # int64 [N, T]
    responses: np.ndarray  # int64 [N, T]
    true_mastery: np.ndarray  # float32 [N, T]: mastery of the practised skill before answering


def simulate(
    num_students: int,
    num_skills: int,
    seq_len: int,
    *,
    guess: float,
    slip: float,
    learn_rate: float,
    repeat_prob: float,
    seed: int,
) -> Population:
    rng = np.random.default_rng(seed)
    ability = rng.normal(0.0, 1.0, num_students)
    difficulty = rng.normal(0.0, 1.0, num_skills)
    mastery = 1.0 / (1.0 + np.exp(-(ability[:, None] - difficulty[None, :] - 1.0)))
    rate = np.clip(learn_rate * np.exp(0.4 * ability), 0.0, 1.0)
    students = np.arange(num_students)

    concepts = np.empty((num_students, seq_len), dtype=np.int64)
    responses = np.empty((num_students, seq_len), dtype=np.int64)
    true_mastery = np.empty((num_students, seq_len), dtype=np.float32)
    skill = rng.integers(0, num_skills, num_students)
    for t in range(seq_len):
        if t > 0:
            switch = rng.random(num_students) >= repeat_prob
            skill = np.where(switch, rng.integers(0, num_skills, num_students), skill)
        m = mastery[students, skill]
        correct = rng.random(num_students) < guess + (1.0 - guess - slip) * m
        concepts[:, t], responses[:, t], true_mastery[:, t] = skill, correct, m
        mastery[students, skill] = m + rate * (1.0 - m)
    return Population(concepts, responses, true_mastery)


def simulate_split(params: Params) -> KTData:
    """The simulated population split as pyKT splits a real dataset (test students, then folds)."""
    pop = simulate(
        params.sim_num_students,
        params.sim_num_skills,
        params.sim_seq_len,
        guess=params.sim_guess,
        slip=params.sim_slip,
        learn_rate=params.sim_learn_rate,
        repeat_prob=params.sim_repeat_prob,
        seed=params.sim_seed,
    )
    return split_population(
        pop, params, params.sim_num_skills, f"synthetic (seed {params.sim_seed})"
    )


def split_population(pop: Population, params: Params, num_c: int, source: str) -> KTData:
    """Whole histories split as pyKT does: 20 % test students, then 5 folds of the rest
    (fold `params.fold` validates); also used for populations from other generators."""
    n = pop.concepts.shape[0]
    order = np.random.default_rng(params.sim_seed + 1).permutation(n)
    n_test = max(1, round(TEST_FRACTION * len(order)))
    test_rows, rest = order[:n_test], order[n_test:]
    folds = np.arange(len(rest)) % N_FOLDS
    valid_rows, train_rows = rest[folds == params.fold], rest[folds != params.fold]

    def cut(rows: np.ndarray) -> Sequences:
        return windows(
            list(pop.concepts[rows]),
            list(pop.responses[rows]),
            [np.ones(pop.concepts.shape[1], dtype=bool)] * len(rows),
            params.seq_len,
            true_mastery=list(pop.true_mastery[rows]),
        )

    return KTData(
        train=cut(train_rows),
        valid=cut(valid_rows),
        test=cut(test_rows),
        num_c=num_c,
        source=source,
    )
