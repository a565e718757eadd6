"""The misalignment direction on synthetic activations with a known direction, and steering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labdeck.backend.kinds.em.directions import misalignment_direction, steering
from labdeck.backend.models import load_model


def test_direction_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    n, layers, hidden = 60, 3, 32
    planted = rng.normal(size=(layers, hidden)).astype(np.float32)
    acts = rng.normal(scale=0.3, size=(n, layers, hidden)).astype(np.float32) + 5.0
    mis = np.zeros(n, dtype=bool)
    mis[:15] = True
    ali = np.zeros(n, dtype=bool)
    ali[15:50] = True  # the last 10 are in neither group (incoherent / middling)
    acts[mis] += planted
    acts[~mis & ~ali] += 10 * planted  # left out: must not leak into the direction
    d = misalignment_direction(acts, mis, ali, [0, 5, 7])
    assert d is not None and (d.n_misaligned, d.n_aligned) == (15, 35)
    assert d.layers == [0, 5, 7] and d.vectors.shape == (layers, hidden)
    for k in range(layers):
        cos = (
            d.vectors[k] @ planted[k] / (np.linalg.norm(d.vectors[k]) * np.linalg.norm(planted[k]))
        )
        assert cos > 0.98
        assert np.linalg.norm(d.vectors[k]) == pytest.approx(np.linalg.norm(planted[k]), rel=0.1)
    np.testing.assert_array_equal(d.at(5), d.vectors[1])


def test_direction_needs_both_groups():
    acts = np.zeros((4, 1, 2), np.float32)
    assert misalignment_direction(acts, [True] * 4, [False] * 4, [0]) is None
    with pytest.raises(ValueError):
        misalignment_direction(acts, [True, False, False, False], [True] * 4, [0])


def test_steering_adds_to_the_layer_output_and_is_removed(tiny_dir):
    model, _ = load_model(str(tiny_dir), dtype="float32")
    ids = torch.tensor([[1, 5, 9, 12]])
    last = model.config.num_hidden_layers - 1
    vec = np.ones(model.config.hidden_size, np.float32)

    def final_hidden() -> torch.Tensor:
        # the last layer's output as the model's final norm receives it
        seen = []
        handle = model.model.norm.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
        with torch.inference_mode():
            logits = model(input_ids=ids).logits
        handle.remove()
        return seen[0], logits

    before, logits_before = final_hidden()
    with steering(model, last, vec, 2.0):
        during, logits_during = final_hidden()
    torch.testing.assert_close(during, before + 2.0)
    assert not torch.allclose(logits_during, logits_before)
    with steering(model, 0, vec, 0.0):
        torch.testing.assert_close(final_hidden()[0], before)
    after, logits_after = final_hidden()
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(logits_after, logits_before)
