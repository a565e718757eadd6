"""Judges: models that grade other models' answers.

- `score`: 0–100 score judges (alignment, coherence), probability-weighted over the
  judge's number tokens where it exposes its distribution, else parsed from its text.
- `pairwise`: which of two answers is better (used by the `feedback` kind).
"""
