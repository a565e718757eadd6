"""Data-parallel training across processes: torchrun's environment, gloo or NCCL.

A run with `[launcher] processes = N` is started under torchrun; every rank runs the
kind's code (so collectives line up) but only rank 0 writes the run directory (the
runner gives other ranks a private shadow directory, see `runner.execute`). A
training loop needs four calls from here:

- `init()` once (no-op in a single process): joins the process group (NCCL on GPUs,
  gloo on CPU) and returns the device this rank should use;
- `shard(n)`: the indices of a global batch of `n` items this rank computes;
- `wrap(model)` (DistributedDataParallel: gradients averaged in backward) or, for a
  hand-written loop, `all_reduce_mean_(grads)` after backward;
- `reduce_mean(value)` for metrics computed on a shard, `is_main()` to gate anything
  written outside the RunContext, `barrier()` around it;
- `any_rank(ctx.should_stop())` before `ctx.check_stop()` at unit boundaries, so a stop
  request ends every rank at the same unit.

Nothing here imports torch at module import, so the command line stays fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def under_torchrun() -> bool:
    """True in a process torchrun started (even a one-process world)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or is_distributed()


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that writes."""
    return rank() == 0


def init(backend: str | None = None) -> str:
    """Join the process group once (idempotent); returns the device for this rank."""
    import torch

    device = f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"
    if not is_distributed():
        return device if torch.cuda.is_available() else "cpu"
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank())
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if device.startswith("cuda") else "gloo"))
    return device


def shutdown() -> None:
    if is_distributed():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def shard(n: int) -> slice:
    """This rank's contiguous share of `n` items (sizes differ by at most one)."""
    w, r = world_size(), rank()
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def wrap(model: Any) -> Any:
    """DistributedDataParallel around `model` when running data-parallel; else `model`."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    params = next(model.parameters(), None)
    on_gpu = params is not None and params.is_cuda
    return DistributedDataParallel(model, device_ids=[local_rank()] if on_gpu else None)


def all_reduce_mean_(tensors: list[Any], weight: float = 1.0) -> None:
    """In place: Σ_ranks(weight·t) / Σ_ranks(weight), e.g. gradients of shard means
    weighted by the shard's item count, which equals the full batch's mean gradient."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    w = torch.tensor([float(weight)], device=tensors[0].device if tensors else "cpu")
    dist.all_reduce(w)
    for t in tensors:
        if t is None:
            continue
        t.mul_(weight)
        dist.all_reduce(t)
        t.div_(w)


def reduce_mean(value: float, weight: float = 1.0) -> float:
    """A scalar averaged across ranks (weighted), identical on every rank."""
    if not is_distributed():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value * weight, weight], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0] / t[1])


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any: a stop request must end all ranks at
    the same unit, or the others would wait forever in the next collective."""
    if not is_distributed():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def torchrun_argv(
    processes: int,
    labdeck_args: list[str],
    nodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int = 29500,
) -> list[str]:
    """`labdeck <args>` under torchrun with `processes` ranks on this node.

    Without `master_addr`: a standalone rendezvous on this machine (the local queue).
    With it (a Slurm job, one torchrun per node): `nodes` nodes meet at the first node's
    address, this one being `node_rank`; world size `nodes * processes`.
    """
    if master_addr is None:
        where = ["--standalone"]
    else:
        where = [
            f"--nnodes={nodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={master_addr}",
            f"--master-port={master_port}",
        ]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *where,
        f"--nproc-per-node={processes}",
        "-m",
        "labdeck.backend.cli",
        *labdeck_args,
    ]
