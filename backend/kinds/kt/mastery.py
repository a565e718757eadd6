"""The mastery estimate the evaluation reports: the head, or the head mixed with BKT's posterior.

The mastery head is trained to agree with the answers (mastery_performance, alignment),
so it follows the answers' trend rather than the hidden knowledge state, and being
accumulated from non-negative gains it cannot take back what a wrong answer says. The
fitted BKT filter (the model's skip term, prefit.py) is Bayes' posterior P(known) of
that state under BKT (Corbett & Anderson 1995), the estimate pyBKT reports. With
`mastery_estimate = "bkt_blend"` the reported mastery of the skill answered next is

    w * head + (1 - w) * P(known),

with w chosen on the validation students: the grid value whose estimate, read through
the filter's own emission model P(correct) = guess + (1 - slip - guess) * mastery,
gives their answers the highest likelihood (the criterion EM fits BKT by). On data BKT
generated the posterior is the best causal estimate and w goes to 0; where students
differ beyond what one skill's answers show, the head's view across skills earns its
weight. Training is unchanged: the losses and per-epoch trajectories read the head.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .batches import length_buckets, trimmed_batch
from .data import Sequences
from .model import KTTransformer
from .semantics import Collected

WEIGHTS = np.linspace(0.0, 1.0, 21)  # the head's share, in steps of 0.05


@torch.no_grad()
def bkt_known(
    model: KTTransformer, seqs: Sequences, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, L-1] each: the filter's P(known), guess and slip of the skill asked at t+1."""
    n, length = seqs.concepts.shape
    known = np.full((n, length - 1), np.nan, dtype=np.float32)
    guess, slip = (np.full((n, length - 1), np.nan, dtype=np.float32) for _ in range(2))
    g_all, s_all = (x.cpu().numpy() for x in model.bkt_guess_slip())
    nxt = seqs.concepts[:, 1:].clip(min=0)
    for rows in length_buckets(seqs, batch_size):
        b = trimmed_batch(seqs, rows, device)
        t = b.concepts.shape[1]
        known[rows, : t - 1] = model.bkt_filter(b.concepts, b.responses)[1].cpu().numpy()
        guess[rows, : t - 1] = g_all[nxt[rows, : t - 1]]
        slip[rows, : t - 1] = s_all[nxt[rows, : t - 1]]
    return known, guess, slip


def emission_log_likelihood(
    mastery: np.ndarray, guess: np.ndarray, slip: np.ndarray, y: np.ndarray
) -> float:
    """Mean log-likelihood of answers y under P(correct) = guess + (1-slip-guess)*mastery."""
    p = np.clip(guess + (1.0 - slip - guess) * mastery, 1e-6, 1 - 1e-6)
    return float(np.mean(np.where(y > 0.5, np.log(p), np.log1p(-p))))


def choose_weight(c: Collected, known: np.ndarray, guess: np.ndarray, slip: np.ndarray) -> float:
    """The head's share of the blend that best explains the validation answers."""
    t = c.target
    y = c.responses[:, 1:][t].astype(np.float64)
    head, post, g, s = c.m_next[t], known[t], guess[t], slip[t]
    scores = [emission_log_likelihood(w * head + (1 - w) * post, g, s, y) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmax(scores))])


def blended(c: Collected, known: np.ndarray, weight: float) -> Collected:
    """The same pass with the skill-answered-next mastery replaced by the blend."""
    return replace(c, m_next=weight * c.m_next + (1 - weight) * known)


def uses_blend(model: KTTransformer, estimate: str) -> bool:
    has_mastery = model.initial_mastery is not None or model.mastery_head is not None
    return estimate == "bkt_blend" and model.bkt is not None and has_mastery
