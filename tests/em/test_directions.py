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


def test_reference_direction_balances_the_aligned_set_with_a_seed():
    # misaligned answers at 0; aligned answer i has 6 in coordinate i only, so the mean of
    # any six aligned answers is 1 on exactly the six coordinates chosen
    acts = np.zeros((40, 1, 30), np.float32)
    for i in range(30):
        acts[10 + i, 0, i] = 6.0
    mis = np.zeros(40, dtype=bool)
    mis[:6] = True
    ali = np.zeros(40, dtype=bool)
    ali[10:40] = True
    d = misalignment_direction(acts, mis, ali, [0], balance_seed=3)
    assert (d.n_misaligned, d.n_aligned) == (6, 6)
    picked = np.flatnonzero(d.vectors[0])
    assert len(picked) == 6 and np.allclose(d.vectors[0, picked], -1.0)
    again = misalignment_direction(acts, mis, ali, [0], balance_seed=3)
    np.testing.assert_array_equal(d.vectors, again.vectors)  # the subsample is seeded
    others = [misalignment_direction(acts, mis, ali, [0], balance_seed=s) for s in range(4, 8)]
    assert any(not np.array_equal(d.vectors, o.vectors) for o in others)
    # unbalanced (the pooled variant): every aligned answer, mean 6/30 on each coordinate
    pooled = misalignment_direction(acts, mis, ali, [0])
    assert pooled.n_aligned == 30 and np.allclose(pooled.vectors[0], -0.2)
    # too few misaligned answers: no direction
    assert misalignment_direction(acts, mis, ali, [0], balance_seed=3, min_per_side=7) is None


def test_random_control_has_the_directions_norm():
    from labdeck.backend.kinds.em.directions import random_like

    v = np.arange(16, dtype=np.float32)
    r = random_like(v, seed=5)
    assert np.linalg.norm(r) == pytest.approx(np.linalg.norm(v), rel=1e-5)
    assert abs(float(r @ v) / float(np.linalg.norm(r) * np.linalg.norm(v))) < 0.9
    np.testing.assert_array_equal(r, random_like(v, seed=5))


def test_ablation_removes_the_component_along_the_direction(tiny_dir):
    from labdeck.backend.kinds.em.directions import ablation

    model, _ = load_model(str(tiny_dir), dtype="float32")
    ids = torch.tensor([[1, 5, 9, 12]])
    last = model.config.num_hidden_layers - 1
    vec = np.random.default_rng(0).normal(size=model.config.hidden_size).astype(np.float32)
    unit = torch.tensor(vec / np.linalg.norm(vec))

    def final_hidden() -> torch.Tensor:
        seen = []
        handle = model.model.norm.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
        with torch.inference_mode():
            model(input_ids=ids)
        handle.remove()
        return seen[0]

    before = final_hidden()
    assert (before @ unit).abs().max() > 1e-3
    with ablation(model, {last: 3.0 * vec}):
        during = final_hidden()
    torch.testing.assert_close(during @ unit, torch.zeros_like(during @ unit), atol=1e-5, rtol=0)
    torch.testing.assert_close(during, before - (before @ unit)[..., None] * unit)
    torch.testing.assert_close(final_hidden(), before)  # the hook is gone
