"""torchrun integration: who am I, and the few collective operations training needs.

Run ``torchrun --nproc_per_node=N -m stages.train_classifier`` (multi-node: torchrun's
``--nnodes``/``--rdzv-endpoint`` flags); a plain ``python -m`` run is a world of one.
``CNNPIPE_DIST_TIMEOUT`` (seconds) bounds every collective: a node that vanishes without closing
its connections (power loss, network cut) fails the others after that long instead of torch's
default 30 minutes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

import torch
import torch.distributed as dist

from cnnpipe.errors import CnnpipeError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    return World(
        rank=int(os.environ.get("RANK", "0")),
        size=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def collective_timeout(environ: Mapping[str, str] = os.environ) -> timedelta | None:
    """``CNNPIPE_DIST_TIMEOUT`` as a timedelta; None (torch's default) when unset."""
    raw = environ.get("CNNPIPE_DIST_TIMEOUT")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise CnnpipeError(f"CNNPIPE_DIST_TIMEOUT must be a positive number of seconds, not {raw!r}")
    return timedelta(seconds=seconds)


def init(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU); return this rank's device."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=collective_timeout())
    return device


def from_main(world: World, value: T) -> T:
    """Rank 0's ``value`` on every rank: what only rank 0's disk holds (its checkpoint, on another
    machine than the other nodes') decides for all, so every rank resumes from the same epoch."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return cast(T, box[0])


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
