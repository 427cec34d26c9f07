"""Data-parallel training across processes (torch.distributed; no Spark).

A trainer asks `DataParallel.current()` where it stands: one process is rank 0 of 1 and every method is a
no-op, so single-process training runs the same code. Under a process group (TorchDistributor, torchrun)
every rank walks the same seeded list of global batches and takes its slice of each (`shard`); DDP averages
the gradients; `global_mean_weight` rescales each rank's mean loss so the averaged gradient is the gradient
of the mean over the whole global batch (ranks can hold different numbers of targets), which makes N
processes train what one process trains on the same global batch, up to float summation order. Decisions
that read a clock or a validation score are taken on rank 0 and shared (`share`), so no rank leaves a
collective call the others wait on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


class LossStep(torch.nn.Module):
    """`loss_fn(model, *args)` as a module's forward, so DDP can wrap it: DDP's gradient hooks are armed in
    forward, and the trainers compute their losses through several of the model's methods, not one forward."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., Any]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.loss_fn(self.model, *args, **kwargs)


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def current(cls) -> DataParallel:
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def primary(self) -> bool:
        """Rank 0: the one process that validates, logs progress and writes checkpoints, weights and cards."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """A CUDA device is this rank's own GPU (cuda:<local rank>); a CPU stays the CPU."""
        if self.distributed and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def wrap(self, model: torch.nn.Module, loss_fn: Callable[..., Any]) -> torch.nn.Module:
        """The module a training step calls: DDP over `LossStep(model, loss_fn)` when distributed."""
        step = LossStep(model, loss_fn)
        if not self.distributed:
            return step
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(step)

    def shard(self, rows: T) -> tuple[T, bool]:
        """(this rank's slice of a global batch of row indices, whether it holds any). Every world_size-th row
        from the rank's own; a rank left without rows (a batch smaller than the world) gets the batch's first
        row to train on with weight 0 (`global_mean_weight` of a zero count), since DDP needs every rank in
        every step."""
        if not self.distributed:
            return rows, True
        mine = rows[self.rank::self.world_size]  # type: ignore[index]
        return (mine, True) if len(mine) else (rows[:1], False)  # type: ignore[index]

    def global_mean_weight(self, count: torch.Tensor) -> torch.Tensor | float:
        """The factor that turns this rank's mean loss over `count` targets into its share of the global mean
        once DDP averages the gradients over ranks: count x world_size / (targets on every rank)."""
        if not self.distributed:
            return 1.0
        total = count.detach().clone().float()
        dist.all_reduce(total)
        return count.float() * self.world_size / total.clamp(min=1.0)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over ranks (for an epoch's loss and target counts)."""
        if self.distributed:
            value = value.detach().clone()
            dist.all_reduce(value)
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when any rank says so (a deadline one rank's clock has passed)."""
        if not self.distributed:
            return flag
        value = torch.tensor(int(flag), device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value)

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank (picklable objects: a training state, timings)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def seed_dropout(self, seed: int, epoch: int) -> None:
        """Per rank and epoch: ranks draw different dropout masks, and a resumed run draws what an
        uninterrupted one would (the checkpoint holds rank 0's generator only)."""
        if self.distributed:
            torch.manual_seed(seed * 1_000_003 + epoch * 1_009 + self.rank)
