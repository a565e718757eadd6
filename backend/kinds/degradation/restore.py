"""Restore policy `subset_in_memory`: the seed's, made cheap.

Only the parameters the sweep can degrade are snapshotted, once, on the CPU
(pinned where CUDA exists so the copy back is a DMA transfer). Before every
(level, repeat) the parameters degraded since the last restore are copied back
in place with `copy_`: the Parameter objects never change, so tied weights
(Gemma's embedding and lm_head) stay one tensor, optimizer-free code holding
references keeps working, and the model is never reloaded from disk.
"""

from __future__ import annotations

import torch
from torch import nn

RESTORE_STRATEGY = "subset_in_memory"


class SubsetSnapshot:
    def __init__(self, params: list[tuple[str, nn.Parameter]]) -> None:
        self._params = dict(params)
        pin = torch.cuda.is_available()
        self._saved: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, p in params:
                cpu = torch.empty(p.shape, dtype=p.dtype, device="cpu", pin_memory=pin)
                cpu.copy_(p.data)
                self._saved[name] = cpu
        self._dirty: set[str] = set()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._saved.values())

    @property
    def names(self) -> list[str]:
        return list(self._saved)

    def mark_dirty(self, names: list[str]) -> None:
        """Called before degrading: these parameters will need restoring."""
        unknown = [n for n in names if n not in self._saved]
        if unknown:
            raise KeyError(f"not in the snapshot (degradable subset): {unknown[:3]}")
        self._dirty.update(names)

    @torch.no_grad()
    def restore(self) -> int:
        """Copy back every dirtied parameter; returns how many were restored."""
        cuda = False
        for name in self._dirty:
            p = self._params[name]
            p.data.copy_(self._saved[name], non_blocking=True)
            cuda = cuda or p.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        n, self._dirty = len(self._dirty), set()
        return n

    @torch.no_grad()
    def matches(self) -> bool:
        """True when every snapshotted parameter equals its saved value (a test/debug check)."""
        return all(torch.equal(self._params[n].data.cpu(), t) for n, t in self._saved.items())
