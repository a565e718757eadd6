"""Reference points a KT model has to beat, scored on the same targets as the model.

- per-skill frequency: P(correct | skill) from the training answers; it knows skill
  difficulty and nothing about the student;
- PFA (performance factor analysis), the classic logistic KT model: per skill an
  easiness plus weights on the student's earlier successes and failures on that skill
  (log(1 + count), so long histories do not dominate), fit by L-BFGS.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import Sequences
from .metrics import accuracy, roc_auc


def _targets(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    """Skills and responses at the target positions (t >= 1, selected), flattened."""
    mask = (seqs.responses[:, 1:] >= 0) & seqs.select[:, 1:]
    return seqs.concepts[:, 1:][mask], seqs.responses[:, 1:][mask]


def frequency_baseline(train: Sequences, test: Sequences, num_c: int) -> dict[str, float]:
    skills, answers = _targets(train)
    correct = np.bincount(skills, weights=answers, minlength=num_c)
    seen = np.bincount(skills, minlength=num_c)
    prior = answers.mean() if len(answers) else 0.5
    rate = (correct + prior) / (seen + 1.0)  # one pseudo-answer at the global rate
    t_skills, t_answers = _targets(test)
    p = rate[t_skills]
    return {"auc": roc_auc(t_answers, p), "accuracy": accuracy(t_answers, p)}


def _pfa_features(seqs: Sequences, num_c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per target: skill, log1p(prior successes on it), log1p(prior failures on it), answer."""
    n, length = seqs.concepts.shape
    succ = np.zeros((n, num_c))
    fail = np.zeros((n, num_c))
    rows = np.arange(n)
    skills, s_feat, f_feat, answers = [], [], [], []
    for t in range(length):
        c, r = seqs.concepts[:, t], seqs.responses[:, t]
        ok = r >= 0
        if t >= 1:
            target = ok & seqs.select[:, t]
            k = c[target]
            skills.append(k)
            s_feat.append(succ[rows[target], k])
            f_feat.append(fail[rows[target], k])
            answers.append(r[target])
        succ[rows[ok], c[ok]] += r[ok] == 1
        fail[rows[ok], c[ok]] += r[ok] == 0
    cat = np.concatenate
    return cat(skills), np.log1p(np.stack([cat(s_feat), cat(f_feat)], 1)), cat(answers)


def pfa_baseline(
    train: Sequences, test: Sequences, num_c: int, steps: int = 100
) -> dict[str, float]:
    skills, feats, answers = _pfa_features(train, num_c)
    k = torch.from_numpy(skills)
    x = torch.from_numpy(feats).float()
    y = torch.from_numpy(answers).float()
    beta = torch.zeros(num_c, requires_grad=True)
    gamma = torch.zeros(num_c, 2, requires_grad=True)
    opt = torch.optim.LBFGS([beta, gamma], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logit = beta[k] + (gamma[k] * x).sum(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        loss = loss + 1e-4 * (beta.square().sum() + gamma.square().sum())
        loss.backward()
        return loss

    opt.step(closure)
    t_skills, t_feats, t_answers = _pfa_features(test, num_c)
    with torch.no_grad():
        tk = torch.from_numpy(t_skills)
        logit = beta[tk] + (gamma[tk] * torch.from_numpy(t_feats).float()).sum(1)
        p = torch.sigmoid(logit).numpy()
    return {"auc": roc_auc(t_answers, p), "accuracy": accuracy(t_answers, p)}
