"""The three degradation methods: what they do to weights, and that they are reproducible."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labdeck.backend.kinds.degradation.methods import degrade, param_seed


def _param(shape=(64, 128), dtype=torch.float32, seed=0) -> tuple[str, nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return f"layer.w{seed}", nn.Parameter(
        torch.randn(shape, generator=g).to(dtype), requires_grad=False
    )


def test_level_zero_is_the_clean_model():
    for method in ("mult_gauss", "ablation", "uni_quant"):
        name, p = _param()
        before = p.detach().clone()
        degrade([(name, p)], method, 0.0, seed=1)
        assert torch.equal(p, before)


def test_mult_gauss_relative_noise_has_the_level_as_std():
    name, p = _param((256, 256))
    before = p.detach().clone()
    degrade([(name, p)], "mult_gauss", 0.2, seed=7)
    rel = (p / before - 1).flatten()
    assert abs(rel.mean().item()) < 0.01
    assert rel.std().item() == pytest.approx(0.2, rel=0.03)


def test_mult_gauss_is_seeded_per_parameter_and_shared_across_levels():
    (n1, a), (n2, b) = _param(seed=1), _param(seed=2)
    a0 = a.detach().clone()
    degrade([(n1, a), (n2, b)], "mult_gauss", 0.1, seed=3)
    alone = nn.Parameter(a0.clone(), requires_grad=False)
    degrade([(n1, alone)], "mult_gauss", 0.1, seed=3)
    assert torch.equal(alone, a), "a parameter's noise must not depend on its group"
    twice = nn.Parameter(a0.clone(), requires_grad=False)
    degrade([(n1, twice)], "mult_gauss", 0.2, seed=3)
    # common random numbers: the 0.2 perturbation is the 0.1 one scaled twice as far
    assert torch.allclose(twice - a0, 2 * (a - a0), atol=1e-6)
    other = nn.Parameter(a0.clone(), requires_grad=False)
    degrade([(n1, other)], "mult_gauss", 0.1, seed=4)
    assert not torch.equal(other, a), "another repeat seed must draw other noise"


def test_mult_gauss_on_bfloat16_draws_fp32_noise_and_keeps_dtype():
    name, p = _param(dtype=torch.bfloat16)
    ref = p.detach().float().clone()
    degrade([(name, p)], "mult_gauss", 0.1, seed=5)
    assert p.dtype == torch.bfloat16
    g = torch.Generator().manual_seed(param_seed(5, name))
    noise = torch.randn(ref.numel(), generator=g, dtype=torch.float32).view_as(ref)
    expected = (ref * (1 + 0.1 * noise)).to(torch.bfloat16)
    assert torch.equal(p.detach(), expected)


def test_ablation_zeroes_the_level_fraction_and_masks_nest():
    name, p = _param((200, 200))
    base = p.detach().clone()
    degrade([(name, p)], "ablation", 0.3, seed=1)
    zero_30 = p == 0
    assert zero_30.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(p[~zero_30], base[~zero_30]), "surviving weights are untouched"
    q = nn.Parameter(base.clone(), requires_grad=False)
    degrade([(name, q)], "ablation", 0.6, seed=1)
    assert bool((q[zero_30] == 0).all()), "a higher level zeroes a superset"


def test_uni_quant_step_rounds_to_a_grid_of_std_units():
    name, p = _param((100, 100))
    std = p.detach().double().std().item()
    degrade([(name, p)], "uni_quant", 0.5, seed=0, uni_quant_mode="step")
    k = p.detach().double() / (0.5 * std)
    assert torch.allclose(k, k.round(), atol=1e-3)
    assert len(torch.unique(p)) < 30


def test_uni_quant_bits_leaves_at_most_two_to_the_bits_values():
    name, p = _param((100, 100))
    lo, hi = p.min().item(), p.max().item()
    degrade([(name, p)], "uni_quant", 3, seed=0, uni_quant_mode="bits")
    values = torch.unique(p)
    assert len(values) <= 8
    assert values.min().item() == pytest.approx(lo, abs=1e-5)
    assert values.max().item() == pytest.approx(hi, abs=1e-5)
