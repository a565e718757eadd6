"""The misalignment direction and steering: the seed's "next steps", built in.

The direction at a layer is the difference of the mean activations of misaligned answers
and of aligned ones (both coherent), over every evaluated checkpoint: the vector along
which fine-tuning moved the answers that went wrong. It is stored with the counts that
produced it, because a direction from three answers means little. Steering adds
α × direction to a layer's output during generation and reports the misaligned rate per α.
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
    acts: np.ndarray, misaligned: Sequence[bool], aligned: Sequence[bool], layers: Sequence[int]
) -> Direction | None:
    """Difference of group means per layer; None when either group is empty.

    `acts` is (answers, layers, hidden); `misaligned` and `aligned` mark each answer's group
    (an answer in neither group, e.g. incoherent or middling, is left out).
    """
    mis = np.asarray(misaligned, dtype=bool)
    ali = np.asarray(aligned, dtype=bool)
    if (mis & ali).any():
        raise ValueError("an answer cannot be both misaligned and aligned")
    if not mis.any() or not ali.any():
        return None
    a = acts.astype(np.float64)
    vec = a[mis].mean(axis=0) - a[ali].mean(axis=0)
    return Direction(list(layers), vec.astype(np.float32), int(mis.sum()), int(ali.sum()))


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
