"""The three degradation methods, applied in place to a list of parameters.

Randomness is drawn from a generator seeded per (repeat seed, parameter name),
never from the global RNG, so:
- a unit can be redone alone after a resume and get exactly the same weights;
- a parameter gets the same draw whichever group it is degraded in;
- the same draw is reused across levels of one repeat (common random numbers):
  mult_gauss at σ=0.2 is the σ=0.1 perturbation scaled twice as far, and the
  weights ablated at 0.2 include those ablated at 0.1, so differences between
  levels measure the level rather than a fresh coin toss.
Tensors are processed in chunks so that the fp32 noise for a large embedding
never needs a full fp32 copy of it on the device.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

import torch
from torch import nn

CHUNK = 1 << 24  # elements per chunk: 64 MiB of fp32 noise at most


def param_seed(seed: int, name: str) -> int:
    """A stable 63-bit seed from the repeat's seed and the parameter's name."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63 - 1)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _chunks(p: torch.Tensor) -> Iterator[torch.Tensor]:
    flat = p.view(-1)
    for start in range(0, flat.numel(), CHUNK):
        yield flat[start : start + CHUNK]


def _moments(p: torch.Tensor) -> tuple[float, float, float, float]:
    """mean, std, min, max in float64, chunk by chunk."""
    total = sq = 0.0
    lo, hi = math.inf, -math.inf
    for c in _chunks(p):
        c64 = c.double()
        total += float(c64.sum())
        sq += float((c64 * c64).sum())
        lo, hi = min(lo, float(c64.min())), max(hi, float(c64.max()))
    n = p.numel()
    mean = total / n
    var = max(sq / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return mean, math.sqrt(var), lo, hi


@torch.no_grad()
def mult_gauss(p: torch.Tensor, level: float, gen: torch.Generator) -> None:
    """w · (1 + σ·N(0,1)), the noise drawn in fp32 and the product cast back."""
    for c in _chunks(p):
        noise = torch.randn(c.shape, generator=gen, device=c.device, dtype=torch.float32)
        c.copy_(c.float().mul_(noise.mul_(level).add_(1.0)))


@torch.no_grad()
def ablation(p: torch.Tensor, level: float, gen: torch.Generator) -> None:
    """Zero each weight with probability `level` (the expected fraction zeroed)."""
    for c in _chunks(p):
        u = torch.rand(c.shape, generator=gen, device=c.device, dtype=torch.float32)
        c.masked_fill_(u < level, 0)


@torch.no_grad()
def uni_quant_step(p: torch.Tensor, level: float) -> None:
    """Round to a uniform grid whose step is `level` standard deviations of the tensor."""
    _, std, _, _ = _moments(p)
    step = level * std
    if step <= 0:
        return
    for c in _chunks(p):
        c.copy_(torch.round(c.float() / step) * step)


@torch.no_grad()
def uni_quant_bits(p: torch.Tensor, bits: float) -> None:
    """Round to 2**bits evenly spaced values spanning the tensor's own [min, max]."""
    _, _, lo, hi = _moments(p)
    steps = 2 ** int(bits) - 1
    if hi <= lo or steps <= 0:
        return
    scale = (hi - lo) / steps
    for c in _chunks(p):
        c.copy_(torch.round((c.float() - lo) / scale) * scale + lo)


def _apply(method: str, t: torch.Tensor, level: float, seed: int, uni_quant_mode: str) -> None:
    if method == "mult_gauss":
        mult_gauss(t, level, _generator(t.device, seed))
    elif method == "ablation":
        ablation(t, level, _generator(t.device, seed))
    elif method == "uni_quant":
        (uni_quant_bits if uni_quant_mode == "bits" else uni_quant_step)(t, level)
    else:
        raise ValueError(f"unknown degradation method {method!r}")


def degrade(
    params: list[tuple[str, nn.Parameter]],
    method: str,
    level: float,
    seed: int,
    uni_quant_mode: str = "step",
) -> None:
    """Apply `method` at `level` to every parameter in place; level 0 leaves the model clean."""
    if level == 0:
        return
    for name, p in params:
        data = p.data
        if data.is_contiguous():
            _apply(method, data, level, param_seed(seed, name), uni_quant_mode)
        else:  # rare (a transposed view): work on a copy and write it back
            tmp = data.contiguous()
            _apply(method, tmp, level, param_seed(seed, name), uni_quant_mode)
            data.copy_(tmp)
