"""One place that seeds every random number generator a run touches."""

from __future__ import annotations

import random

import numpy as np


def set_all_seeds(seed: int) -> None:
    """Seed python, numpy, torch and every CUDA device; called at start and per repeat
    with `seed_base + repeat_index`, so a repeat can be rerun on its own."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
