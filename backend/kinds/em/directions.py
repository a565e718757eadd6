"""The misalignment direction, steering and projection ablation.

The direction follows Soligo, Turner et al. 2025, "Convergent Linear Representations of
Emergent Misalignment" (github.com/clarifying-EM/model-organisms-for-EM): activations of
the fine-tuned model (the final checkpoint unless another is chosen), the residual stream
after each decoder block averaged over the answer's tokens; misaligned answers are
aligned <= 30 and coherent > 50, aligned ones aligned > 70 and coherent > 50; the aligned
set is subsampled (seeded) to the size of the misaligned one; the direction per layer is
mean(misaligned) − mean(aligned). The earlier variant, pooling every checkpoint without
subsampling, stays selectable as "pooled". Both are stored with the counts that produced
them, and with too few answers on either side there is no direction, only the counts.

Steering adds α × direction to a block's output at every position (the raw direction, as
the reference adds it); a random direction of the same norm is the control. Ablation
removes the direction's component, h − (h·r̂)r̂, from a block's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Direction:
    layers: list[int]
    vectors: np.ndarray  # (layers, hidden): mean(misaligned) − mean(aligned)
    n_misaligned: int
    n_aligned: int

    @property
    def norms(self) -> list[float]:
        return [float(x) for x in np.linalg.norm(self.vectors, axis=1)]

    def at(self, layer: int) -> np.ndarray:
        return self.vectors[self.layers.index(layer)]


def misalignment_direction(
    acts: np.ndarray,
    misaligned: Sequence[bool],
    aligned: Sequence[bool],
    layers: Sequence[int],
    *,
    balance_seed: int | None = None,
    min_per_side: int = 1,
) -> Direction | None:
    """Difference of group means per layer; None when a group has fewer than `min_per_side`.

    `acts` is (answers, layers, hidden); `misaligned` and `aligned` mark each answer's group
    (an answer in neither group, e.g. incoherent or middling, is left out). With
    `balance_seed`, the larger group is subsampled to the smaller one's size with that
    seed (the reference subsamples the aligned answers to the misaligned count).
    """
    mis = np.asarray(misaligned, dtype=bool)
    ali = np.asarray(aligned, dtype=bool)
    if (mis & ali).any():
        raise ValueError("an answer cannot be both misaligned and aligned")
    if mis.sum() < max(1, min_per_side) or ali.sum() < max(1, min_per_side):
        return None
    mis_idx, ali_idx = np.flatnonzero(mis), np.flatnonzero(ali)
    if balance_seed is not None:
        rng = np.random.default_rng(balance_seed)
        k = min(len(mis_idx), len(ali_idx))
        if len(ali_idx) > k:
            ali_idx = np.sort(rng.choice(ali_idx, size=k, replace=False))
        if len(mis_idx) > k:
            mis_idx = np.sort(rng.choice(mis_idx, size=k, replace=False))
    a = acts.astype(np.float64)
    vec = a[mis_idx].mean(axis=0) - a[ali_idx].mean(axis=0)
    return Direction(list(layers), vec.astype(np.float32), len(mis_idx), len(ali_idx))


def random_like(vector: np.ndarray, seed: int) -> np.ndarray:
    """A random direction with the norm of `vector` (the steering control)."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(vector.shape)
    return (r / np.linalg.norm(r) * np.linalg.norm(vector)).astype(np.float32)


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder blocks (whatever wrappers peft or the family adds)."""
    import torch

    n = model.config.get_text_config().num_hidden_layers
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError("cannot find the decoder layers of this model")


@contextlib.contextmanager
def steering(model: Any, layer: int, vector: np.ndarray, alpha: float) -> Iterator[None]:
    """While active, add alpha × vector to the output of decoder layer `layer` at every position."""
    import torch

    block = decoder_layers(model)[layer]
    param = next(model.parameters())
    delta = torch.as_tensor(alpha * vector, dtype=param.dtype, device=param.device)

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + delta.to(output[0].dtype), *output[1:])
        return output + delta.to(output.dtype)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def ablation(model: Any, vectors: dict[int, np.ndarray]) -> Iterator[None]:
    """While active, remove the component along vectors[layer] from each named block's
    output: h − (h·r̂)r̂ at every position."""
    import torch

    blocks = decoder_layers(model)
    param = next(model.parameters())
    handles = []

    def make_hook(unit: Any) -> Any:
        def project_out(h: Any) -> Any:
            u = unit.to(h.dtype)
            return h - (h @ u)[..., None] * u

        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (project_out(output[0]), *output[1:])
            return project_out(output)

        return hook

    for layer, vector in vectors.items():
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            continue
        unit = torch.as_tensor(vector / norm, dtype=torch.float32, device=param.device)
        handles.append(blocks[layer].register_forward_hook(make_hook(unit)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
