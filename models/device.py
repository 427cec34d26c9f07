"""Which torch device a job runs on when it is not told: the GPU when there is one."""

from __future__ import annotations

import torch


def default_device(requested: str | None = None) -> torch.device:
    return torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))


def set_cpu_threads(threads: int | None = None) -> int:
    """Torch's CPU threads: `threads`, or the cores this process may run on (its CPU affinity, which
    taskset, cgroups and schedulers set), so a job beside Spark or another job does not oversubscribe."""
    import os

    count = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    return count
