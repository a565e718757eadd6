"""Text metrics per (group, level): how degradation shows in the outputs.

Word-level and model-free so the numbers compare across models and tokenizers:
- distinct-2: unique word bigrams / all bigrams over the level's outputs (pooled);
- MATTR: moving-average type-token ratio per output (window 50 words, or the
  whole output when shorter), averaged: length-robust lexical diversity;
- repetition rate: per output, the share of word trigrams that repeat an
  earlier trigram of the same output, averaged (degenerate loops score near 1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from statistics import fmean

_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)
MATTR_WINDOW = 50


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    grams = [g for t in texts for g in _ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mattr(text: str, window: int = MATTR_WINDOW) -> float:
    toks = words(text)
    if not toks:
        return 0.0
    if len(toks) <= window:
        return len(set(toks)) / len(toks)
    counts: dict[str, int] = {}
    for w in toks[:window]:
        counts[w] = counts.get(w, 0) + 1
    ratios = [len(counts) / window]
    for i in range(window, len(toks)):
        out, new = toks[i - window], toks[i]
        counts[out] -= 1
        if not counts[out]:
            del counts[out]
        counts[new] = counts.get(new, 0) + 1
        ratios.append(len(counts) / window)
    return fmean(ratios)


def repetition_rate(text: str, n: int = 3) -> float:
    grams = _ngrams(words(text), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def level_metrics(outputs: Sequence[str], tokens_out: Sequence[int]) -> dict[str, float]:
    """The per-level curve values the dashboard draws."""
    if not outputs:
        return {}
    return {
        "mean_tokens_out": fmean(tokens_out) if tokens_out else 0.0,
        "distinct_2": distinct_n(outputs, 2),
        "mattr": fmean(mattr(t) for t in outputs),
        "repetition_rate": fmean(repetition_rate(t) for t in outputs),
    }
