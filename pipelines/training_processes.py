"""A trainer in N processes on the driver's machine, launched by Spark's TorchDistributor (--distributed N).

The trainers (models/*_training.py, models/sasrec.py) are data-parallel already: under a process group
each rank trains its shard of every global batch and DDP averages the gradients (models/distributed.py).
This module only starts the group: gloo on CPU, NCCL on GPU (one GPU per rank, cuda:<local rank>),
torch's CPU threads split between the ranks, logs and progress from rank 0 only. Rank 0 writes the
checkpoints and weights and returns the result, with modules moved to the CPU.

TorchDistributor needs an active SparkSession; it runs in local mode (processes on the driver, where the
training job's GPUs are). `use_gpu=False` is passed on purpose: TorchDistributor's GPU mode asks Spark's
resource scheduler for GPUs (spark.driver.resource.gpu.amount), which a plain `local[*]` session has not
configured; the ranks choose their GPU themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")


def in_processes(train: Callable[[], T], processes: int, device: str | None = None) -> T:
    """`train()` here when `processes` is 1, else in `processes` ranks of a process group; rank 0's result."""
    if processes < 1:
        raise ValueError(f"--distributed takes a number of processes >= 1, got {processes}")
    if processes == 1:
        return train()
    import torch
    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession

    try:
        SparkSession.active()
    except Exception as exc:  # pyspark raises its own error types here, by version
        raise RuntimeError("training in several processes goes through Spark's TorchDistributor, which needs an "
                           "active SparkSession (the train jobs start one for --distributed)") from exc

    from models.device import default_device

    cuda = default_device(device).type == "cuda"
    if cuda and processes > torch.cuda.device_count():
        raise ValueError(f"--distributed {processes} on CUDA needs {processes} GPUs; "
                         f"this machine has {torch.cuda.device_count()}")
    threads = max(1, len(os.sched_getaffinity(0)) // processes)
    backend = "nccl" if cuda else "gloo"
    log.info("training in %d processes (%s, %d CPU thread(s) each) through TorchDistributor", processes, backend,
             threads)
    distributor = TorchDistributor(num_processes=processes, local_mode=True, use_gpu=False)
    # TorchDistributor copies the ranks' output to sys.stdout: to stderr instead, beside this process's own logs,
    # so a job's stdout still holds its result alone
    with contextlib.redirect_stdout(sys.stderr):
        result = distributor.run(_train_in_rank, train, backend, threads, logging.getLogger().getEffectiveLevel())
    return cast(T, result)  # rank 0's return value of train()


def _train_in_rank(train: Callable[[], Any], backend: str, threads: int, log_level: int) -> Any:
    """One rank: join the group, train; rank 0 returns the result (modules on the CPU)."""
    import torch
    import torch.distributed as dist

    from models.device import set_cpu_threads

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=log_level if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s rank {rank} %(name)s: %(message)s")
    set_cpu_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        result = _on_cpu(train())
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if rank != 0:
        # TorchDistributor's runner pickles every rank's return value into the same file: only rank 0 may
        # reach it (two writers of one file left it truncated); the others end here, successfully
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return result


def _on_cpu(result: Any) -> Any:
    """Modules (alone or in a tuple) moved to the CPU, so the driver can unpickle them without a GPU."""
    import torch

    if isinstance(result, torch.nn.Module):
        return result.cpu()
    if isinstance(result, tuple):
        return tuple(_on_cpu(part) for part in result)
    return result
