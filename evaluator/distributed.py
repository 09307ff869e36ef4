"""Data-parallel training under ``torchrun``: who this process is, and keeping ranks equal.

``torchrun --nproc-per-node K`` starts K copies of the same command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`join_from_env` reads them and
joins the process group (gloo on the CPU, nccl on CUDA). Without them training runs in one
process, as a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from optinas.search_space.errors import ConfigError

__all__ = ["World", "world_from_env", "join_from_env", "sync_from_rank0", "leave"]


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel ranks (a world of one without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes files and prints (rank 0)."""
        return self.rank == 0


def world_from_env() -> World:
    """The rank, world size and local rank torchrun set; a world of one without them.

    Raises:
        ConfigError: If the variables are present but not consistent integers.
    """
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if "WORLD_SIZE" not in os.environ:
        return World()
    try:
        rank, size, local = (int(os.environ.get(name, "0")) for name in names)
    except ValueError:
        raise ConfigError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them), got "
            f"{[os.environ.get(name) for name in names]}") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ConfigError(f"torchrun environment is inconsistent: RANK={rank}, WORLD_SIZE={size}")
    return World(rank=rank, size=size, local_rank=local)


def join_from_env(device: torch.device) -> tuple[World, torch.device]:
    """Joins the process group when started by torchrun; returns the world and this rank's device.

    On CUDA each rank takes the GPU of its local rank, and the backend is nccl; on the
    CPU it is gloo.
    """
    world = world_from_env()
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world, device


@torch.no_grad()
def sync_from_rank0(model: nn.Module, world: World) -> None:
    """Copies rank 0's parameters and buffers to every rank.

    DDP keeps parameters equal by averaging gradients, but BatchNorm's running statistics
    are updated from each rank's own shard after DDP's buffer broadcast, and a layer that
    initialises a parameter from its first batch (LSQ's step) would start ranks apart.
    """
    if not world.distributed:
        return
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def leave(world: World) -> None:
    """Leaves the process group (a no-op for a world of one)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
