"""Reference KT models for bench_kt_quality: a BKT data generator, BKT fitted by EM
(pyBKT's model), and a DKT-style LSTM, all on the kind's own `Sequences` and split.

- `simulate_bkt`: the standard BKT generative process per skill (prior, learn, guess,
  slip; no forgetting), with the skill order of the built-in simulator (students repeat
  a skill with probability `repeat_prob`), so only the answer process differs.
- `bkt_baseline`: standard BKT fitted by EM (Baum-Welch per skill) on the training
  windows, then its forward-filtered predictions on the test targets (the same targets
  every model is scored on: positions t >= 1 of each window). pyBKT 1.4.3 installs on
  Python 3.11 but does not run with numpy 2 (its EM_fit assigns a sequence to an array
  element), so the fit is written out here.
- `dkt_baseline`: Piech et al.'s DKT: one-hot-like (skill, response) embedding, LSTM,
  per-skill sigmoid read at the next skill; early stopping on validation AUC.
"""

from __future__ import annotations

import numpy as np
import torch

from labdeck.backend.kinds.kt.data import KTData, Sequences
from labdeck.backend.kinds.kt.metrics import accuracy, pearson, roc_auc
from labdeck.backend.kinds.kt.simulator import Population


def simulate_bkt(
    num_students: int, num_skills: int, seq_len: int, *, repeat_prob: float, seed: int
) -> Population:
    """Students answering under per-skill BKT parameters drawn once per skill."""
    rng = np.random.default_rng(seed)
    prior = rng.uniform(0.05, 0.4, num_skills)
    learn = rng.uniform(0.05, 0.3, num_skills)
    guess = rng.uniform(0.1, 0.3, num_skills)
    slip = rng.uniform(0.05, 0.2, num_skills)
    known = rng.random((num_students, num_skills)) < prior[None, :]
    students = np.arange(num_students)
    concepts = np.empty((num_students, seq_len), dtype=np.int64)
    responses = np.empty((num_students, seq_len), dtype=np.int64)
    state = np.empty((num_students, seq_len), dtype=np.float32)
    skill = rng.integers(0, num_skills, num_students)
    for t in range(seq_len):
        if t > 0:
            switch = rng.random(num_students) >= repeat_prob
            skill = np.where(switch, rng.integers(0, num_skills, num_students), skill)
        k = known[students, skill]
        p = np.where(k, 1.0 - slip[skill], guess[skill])
        concepts[:, t], responses[:, t] = skill, rng.random(num_students) < p
        state[:, t] = k
        known[students, skill] = k | (rng.random(num_students) < learn[skill])
    return Population(concepts, responses, state)


def _targets(seqs: Sequences) -> np.ndarray:
    return (seqs.responses[:, 1:] >= 0) & seqs.select[:, 1:]


def _skill_runs(seqs: Sequences, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Skill k's answers per window as a padded [runs, longest] matrix (-1 pad), with the
    (row, column) each answer came from, in time order."""
    mask = (seqs.concepts == k) & (seqs.responses >= 0)
    rank = np.cumsum(mask, axis=1) - 1
    rows = np.flatnonzero(mask.any(1))
    obs = np.full((len(rows), int(mask.sum(1).max(initial=0))), -1, dtype=np.int64)
    where = np.full(obs.shape, -1, dtype=np.int64)
    r, c = np.nonzero(mask[rows])
    obs[r, rank[rows][r, c]] = seqs.responses[rows][r, c]
    where[r, rank[rows][r, c]] = c
    return obs, rows, where


def _filter(obs: np.ndarray, prior: float, learn: float, guess: float, slip: float):
    """P(correct) before each answer, and the scaled forward/backward quantities EM needs."""
    n, length = obs.shape
    known = np.full(n, prior)
    pred = np.zeros((n, length))
    alpha = np.zeros((n, length))  # P(known at t | answers up to t)
    for t in range(length):
        o = obs[:, t]
        live = o >= 0
        pred[:, t] = known * (1 - slip) + (1 - known) * guess
        like1 = np.where(o == 1, 1 - slip, slip)
        like0 = np.where(o == 1, guess, 1 - guess)
        post = known * like1 / (known * like1 + (1 - known) * like0)
        post = np.where(live, post, known)
        alpha[:, t] = post
        known = post + (1 - post) * learn
    return pred, alpha


def fit_bkt(obs: np.ndarray, iters: int = 60) -> tuple[float, float, float, float]:
    """EM (Baum-Welch) for one skill's 2-state BKT HMM, no forgetting; guess and slip are
    kept below 0.5 (the usual identifiability bounds)."""
    prior, learn, guess, slip = 0.3, 0.1, 0.2, 0.1
    live = obs >= 0
    o1 = obs == 1
    n, length = obs.shape
    if n == 0:
        return prior, learn, guess, slip
    for _ in range(iters):
        _, alpha = _filter(obs, prior, learn, guess, slip)
        # backward pass for the smoothed P(known at t) and the 0->1 transitions
        gamma = np.zeros((n, length))
        trans_num = np.zeros(n)
        trans_den = np.zeros(n)
        nxt = np.ones(n)  # P(known at t+1 | all answers), valid where t+1 is live
        for t in range(length - 1, -1, -1):
            lt = live[:, t]
            has_next = (t + 1 < length) & (live[:, t + 1] if t + 1 < length else False)
            a = alpha[:, t]
            pred_next = a + (1 - a) * learn  # P(known at t+1 | answers up to t)
            # P(known at t | all) = a * P(known_{t+1}|all)/pred_next (known stays known) +
            #   unknown at t and learned: handled through the complement below
            p_k_then_k = a / np.maximum(pred_next, 1e-12)  # P(known_t | known_{t+1}, o<=t)
            g = np.where(has_next, nxt * p_k_then_k, a)
            # transition unknown->known between t and t+1
            p_u_then_k = (1 - a) * learn / np.maximum(pred_next, 1e-12)
            tr = np.where(has_next, nxt * p_u_then_k, 0.0)
            trans_num += np.where(has_next, tr, 0.0)
            trans_den += np.where(has_next, 1 - g, 0.0)
            gamma[:, t] = np.where(lt, g, 0.0)
            nxt = np.where(lt, g, nxt)
        first = gamma[:, 0]
        prior = float(np.clip(first.mean(), 1e-4, 1 - 1e-4))
        learn = float(np.clip(trans_num.sum() / max(trans_den.sum(), 1e-12), 1e-4, 1 - 1e-4))
        unk = (1 - gamma) * live
        kn = gamma * live
        guess = float(np.clip((unk * o1).sum() / max(unk.sum(), 1e-12), 1e-4, 0.5))
        slip = float(np.clip((kn * (live & ~o1)).sum() / max(kn.sum(), 1e-12), 1e-4, 0.5))
    return prior, learn, guess, slip


def bkt_baseline(data: KTData) -> dict[str, float]:
    """Standard BKT, EM-fitted per skill on the training windows, predicting each test
    target from the student's earlier answers on that skill in the window (what pyBKT's
    `predict` does); scored on the same targets as every other model."""
    test = data.test
    prob = np.full(test.concepts.shape, np.nan)
    known = np.full(test.concepts.shape, np.nan)  # P(known) before each answer
    for k in range(data.num_c):
        prior, learn, guess, slip = fit_bkt(_skill_runs(data.train, k)[0])
        obs, rows, where = _skill_runs(test, k)
        pred, _ = _filter(obs, prior, learn, guess, slip)
        r, j = np.nonzero(obs >= 0)
        prob[rows[r], where[r, j]] = pred[r, j]
        known[rows[r], where[r, j]] = (pred[r, j] - guess) / max(1 - slip - guess, 1e-6)
    mask = _targets(test)
    y, p = test.responses[:, 1:][mask], prob[:, 1:][mask]
    out = {"auc": roc_auc(y, p), "accuracy": accuracy(y, p)}
    if test.true_mastery is not None:
        out["true_corr"] = pearson(known[:, 1:][mask], test.true_mastery[:, 1:][mask])
    return out


class DKT(torch.nn.Module):
    def __init__(self, num_c: int, hidden: int) -> None:
        super().__init__()
        self.num_c = num_c
        self.embed = torch.nn.Embedding(2 * num_c, hidden)
        self.lstm = torch.nn.LSTM(hidden, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, num_c)

    def forward(self, c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(c.clamp(min=0) + self.num_c * r.clamp(min=0)))
        logits = self.out(h[:, :-1])
        return logits.gather(-1, c[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)


def _predict(model: DKT, seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logit = model(torch.from_numpy(seqs.concepts), torch.from_numpy(seqs.responses))
    mask = _targets(seqs)
    return seqs.responses[:, 1:][mask], torch.sigmoid(logit).numpy()[mask]


def dkt_baseline(
    data: KTData, hidden: int = 64, epochs: int = 40, patience: int = 5, seed: int = 42
) -> dict[str, float]:
    torch.manual_seed(seed)
    model = DKT(data.num_c, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tr = data.train
    g = torch.Generator().manual_seed(seed)
    best, best_state, since = -1.0, None, 0
    for _ in range(epochs):
        model.train()
        for rows in torch.randperm(len(tr), generator=g).split(32):
            rows = rows.numpy()
            c, r = torch.from_numpy(tr.concepts[rows]), torch.from_numpy(tr.responses[rows])
            mask = torch.from_numpy(_targets(tr.subset(rows)))
            logit = model(c, r)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logit[mask], r[:, 1:][mask].float()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        auc = roc_auc(*_predict(model, data.valid))
        if auc > best:
            best, since = auc, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                break
    model.load_state_dict(best_state)
    y, p = _predict(model, data.test)
    return {"auc": roc_auc(y, p), "accuracy": accuracy(y, p)}
