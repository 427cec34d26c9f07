"""TIGER trained in 2 processes (--distributed 2: TorchDistributor, DDP over gloo) against 1, same global batches.

    python -m benchmarks.bench_distributed [--processes 2] [--epochs 2]

MovieLens-100K's training examples over a random semantic-ID table (as
bench_tiger_training: throughput and loss agreement do not depend on the
IDs), the cpu-bench model without dropout (each rank would draw its own
masks) and without the dense head. The single-process run uses every core in
one process; the N-process run gives each rank cores / N threads. Reported:
each epoch's mean training loss in both runs and the largest relative
difference (the ranks sum each batch's gradient in N parts: last-bit float
differences that Adam carries through), training examples/s of each, wall
seconds including TorchDistributor's start. Writes
benchmarks/results/distributed.json (the device's block: `cpu`, or the GPU's).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time

from benchmarks.bench_tiger_training import movielens_sequences
from benchmarks.common import RESULTS, benchmark_logging, write_results
from models.device import default_device, set_cpu_threads
from models.tiger_training import train_tiger
from pipelines.presets import PRESETS
from pipelines.training_processes import in_processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-users", type=int, default=300, help="validation users scored per epoch")
    args = parser.parse_args()
    benchmark_logging()

    from pipelines.lakehouse.config import SparkConfig
    from pipelines.lakehouse.spark import build_spark_session

    spark = build_spark_session(SparkConfig(app_name="bench-distributed", master="local[1]"))  # hosts TorchDistributor
    preset = PRESETS["cpu-bench"]
    config = dataclasses.replace(preset.tiger, dropout=0.0, dense_head=False)
    train = dataclasses.replace(preset.tiger_train, epochs=args.epochs, max_minutes=None, patience=None,
                                eval_users=args.eval_users)
    index, sequences = movielens_sequences(config.levels, config.codebook_size)
    config = dataclasses.replace(config, max_history=sequences.train.histories.shape[1])
    run = functools.partial(train_tiger, index.codes, sequences.train, sequences.valid, config, train, progress=False)

    runs = {}
    for processes in (1, args.processes):
        threads = set_cpu_threads()
        started = time.perf_counter()
        _, state = in_processes(run, processes)
        seconds = time.perf_counter() - started
        runs[processes] = {"processes": processes, "threads_per_process": max(1, threads // processes),
                           "losses": [h["loss"] for h in state.history],
                           "examples_per_s": round(sum(h["examples"] for h in state.history)
                                                   / sum(h["examples"] / h["examples_per_s"] for h in state.history), 1),
                           "steps": state.step, "wall_seconds": round(seconds, 1)}
        print(json.dumps(runs[processes]), flush=True)
    spark.stop()
    one, many = runs[1], runs[args.processes]
    difference = max(abs(a - b) / abs(b) for a, b in zip(many["losses"], one["losses"], strict=True))
    device = default_device(None)
    block = {
        "dataset": "ml-100k", "model": "cpu-bench TIGER, dropout 0, no dense head", "epochs": args.epochs,
        "train_examples": len(sequences.train), "processes": args.processes,
        "backend": "nccl" if device.type == "cuda" else "gloo",
        "max_relative_loss_difference": difference, "same_steps": one["steps"] == many["steps"],
        "single_process": one, "distributed": many,
        "examples_per_s_ratio": round(many["examples_per_s"] / one["examples_per_s"], 3),
    }
    print(f"largest relative loss difference {difference:.2e}; examples/s {one['examples_per_s']:.0f} (1 process) "
          f"vs {many['examples_per_s']:.0f} ({args.processes} processes), ratio {block['examples_per_s_ratio']}")
    path = RESULTS / "distributed.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    write_results("distributed", {**previous, "cpu" if device.type == "cpu" else "cuda": block})


if __name__ == "__main__":
    main()
