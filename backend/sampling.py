"""Per-row sampling: a record's sampled text depends on its own key and seed, not its batch.

`model.generate(do_sample=True)` draws every row of a batch from one global RNG, so the
random numbers a prompt receives depend on which prompts share its batch and in which
order. An out-of-memory retry with a smaller batch, or a resume with another batch
size, would then give the same record (same key, same recorded seed) another text.

`RowSampler` is the last logits processor of a greedy `generate` call: it applies the
sampling warpers itself (temperature, top-k, top-p, as transformers does) and draws the
next token of each row from that row's own `torch.Generator`, seeded from the row's key
and the run's seed; it returns scores where only the drawn token is finite, so the
greedy step picks exactly that token. Whatever the batch, row i consumes only its own
random stream, one draw per generated token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


def row_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one record from the run's seed and the record's key."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class RowSampler(LogitsProcessor):
    """Samples each row from its own generator (see module docstring)."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int, top_p: float) -> None:
        self.seeds = list(seeds)
        self.warpers = LogitsProcessorList()
        if temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))
        self._generators: list[torch.Generator] | None = None

    def _gens(self, device: torch.device) -> list[torch.Generator]:
        if self._generators is None:
            self._generators = []
            for s in self.seeds:
                g = torch.Generator(device=device)
                g.manual_seed(s)
                self._generators.append(g)
        return self._generators

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> Any:
        if scores.shape[0] != len(self.seeds):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.seeds)} row seeds")
        warped = self.warpers(input_ids, scores.float())
        probs = torch.softmax(warped, dim=-1)
        gens = self._gens(scores.device)
        picks = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(gens)])
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, picks.view(-1, 1), 0.0)
        return out
