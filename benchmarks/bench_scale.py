"""Scale run: synthetic users and items through every nightly stage, at 10^6 and 10^7 events.

    python -m benchmarks.bench_scale [--sizes 1e6,1e7] [--tiger-minutes 3]

The synthetic generator (pipelines/ingest/synthetic.py) scaled: 10^4 users and
items per 10^6 events (10^5 each at 10^7), the same history-length spread
(log-normal, median chosen for ~100 events per user). Each stage runs as its
own job process, as Airflow runs it, on Spark local[*]:

  ingest -> embed-items (ALS over the events) -> train-rqvae (capped epochs)
  -> assign-semantic-ids -> cluster-behaviors -> train-tiger (test preset,
  time-budgeted) -> generate-candidates (Spark engine, TIGER's top-20 for
  every user)

Per stage: wall seconds, rows/s, and the peak resident memory of the job's
driver process, of its Spark Python workers (summed over those alive at each
sample) and of the JVM, sampled every 0.2 s. From the two sizes, each
stage's time growth exponent log(t2/t1) / log(n2/n1). train-tiger stops on
its time budget, so its time is flat by design: it is left out of the
exponent and reported as examples/s. `driver_peak_rss_ratio` is the largest
driver peak of the Spark stages at the larger size over the smaller (target
<= 1.5: the driver never holds the events); the torch trainers (train-rqvae,
train-tiger) hold their training sets by design and are reported beside it.
Writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psutil

from benchmarks.common import write_results
from pipelines.lakehouse.config import ENV_ARTIFACTS_ROOT, ENV_LAKEHOUSE_ROOT

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "scale"
RUN_DATE = "2026-01-01"  # the synthetic events end in 2025
EVENTS_PER_USER = 100
HISTORY_SIGMA = 1.0  # SynthConfig's default spread: mean = median * exp(sigma^2 / 2)
TORCH_TRAINERS = ("train-rqvae", "train-tiger")
BUDGETED = ("train-tiger",)


@dataclass
class Peaks:
    driver: int = 0
    workers: int = 0
    jvm: int = 0

    def sample(self, root: psutil.Process) -> None:
        try:
            children = root.children(recursive=True)
            driver = root.memory_info().rss
        except psutil.Error:
            return
        workers = jvm = 0
        for child in children:
            try:
                rss = child.memory_info().rss
                if "java" in child.name():
                    jvm += rss
                else:
                    workers += rss
            except psutil.Error:
                continue
        self.driver, self.workers, self.jvm = max(self.driver, driver), max(self.workers, workers), max(self.jvm, jvm)


@dataclass
class StageRun:
    seconds: float
    peaks: Peaks = field(default_factory=Peaks)


def run_stage(args: list[str], env: dict[str, str], log_path: pathlib.Path) -> StageRun:
    """One job as its own process; its wall time and the peak RSS of its process tree."""
    peaks = Peaks()
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peaks.sample(root)
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = process.wait()
        done.set()
        watcher.join()
    seconds = time.perf_counter() - started
    if code:
        raise SystemExit(f"{' '.join(args[:1])} failed (exit {code}); see {log_path}:\n"
                         + log_path.read_text()[-3000:])
    return StageRun(seconds, peaks)


def stages(tiger_minutes: float, rqvae_epochs: int) -> list[tuple[str, list[str]]]:
    date = ["--run-date", RUN_DATE]
    return [
        ("ingest", ["ingest", "--format", "synthetic", "--path", str(WORK / "raw"), *date]),
        ("embed-items", ["embed-items", "--source", "als", *date]),
        ("train-rqvae", ["train-rqvae", "--epochs", str(rqvae_epochs), *date]),
        ("assign-semantic-ids", ["assign-semantic-ids", *date]),
        ("cluster-behaviors", ["cluster-behaviors", "--plots-dir", str(WORK / "plots"), *date]),
        ("train-tiger", ["train-tiger", "--size", "test", "--epochs", "1", "--max-minutes", str(tiger_minutes),
                         "--eval-users", "500", *date]),
        ("generate-candidates", ["generate-candidates", "--engine", "spark", "--no-rerank", "--top-k", "20",
                                 *date]),
    ]


def run_size(target_events: int, args: argparse.Namespace) -> dict:
    import pyarrow.parquet as pq

    from pipelines.ingest.synthetic import SynthConfig, write_raw

    shutil.rmtree(WORK, ignore_errors=True)
    users = max(1, target_events // EVENTS_PER_USER)
    median = EVENTS_PER_USER / math.exp(HISTORY_SIGMA**2 / 2)
    started = time.perf_counter()
    raw = write_raw(SynthConfig(n_items=users, n_users=users, median_history=round(median), max_history=5_000,
                                history_sigma=HISTORY_SIGMA, seed=0), str(WORK / "raw"))
    events = pq.read_metadata(raw["events"]).num_rows
    print(f"{events:,} events, {users:,} users and items generated in {time.perf_counter() - started:.0f}s",
          flush=True)
    env = {**os.environ, ENV_LAKEHOUSE_ROOT: str(WORK / "lakehouse"), ENV_ARTIFACTS_ROOT: str(WORK / "artifacts"),
           "PYSPARK_PYTHON": sys.executable}
    rows = {"ingest": events, "embed-items": events, "train-rqvae": users, "assign-semantic-ids": users,
            "cluster-behaviors": events, "generate-candidates": users}
    out: dict = {"events": events, "users": users, "items": users, "stages": {}}
    for name, job in stages(args.tiger_minutes, args.rqvae_epochs):
        result = run_stage(job, env, WORK / f"{name}.log")
        stage = {"seconds": round(result.seconds, 1),
                 "driver_peak_rss_mb": round(result.peaks.driver / 2**20),
                 "workers_peak_rss_mb": round(result.peaks.workers / 2**20),
                 "jvm_peak_rss_mb": round(result.peaks.jvm / 2**20)}
        if name in rows:
            stage["rows"] = rows[name]
            stage["rows_per_s"] = round(rows[name] / result.seconds, 1)
        if name == "train-tiger":
            stage.update(tiger_throughput())
        out["stages"][name] = stage
        print(f"{events:,} events | {name}: {json.dumps(stage)}", flush=True)
    return out


def tiger_throughput() -> dict:
    from pipelines.lakehouse.artifacts import ArtifactStore

    store = ArtifactStore(root=str(WORK / "artifacts"))
    card = store.read_card("tiger", store.resolve("tiger", None))
    epoch = card["history"][-1]
    return {"examples_per_s": round(epoch["examples_per_s"], 1), "examples_trained": epoch.get("examples"),
            "train_examples": card["metrics"]["train_examples"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e6,1e7", help="events per run, comma-separated, smallest first")
    parser.add_argument("--tiger-minutes", type=float, default=3.0, help="train-tiger's time budget")
    parser.add_argument("--rqvae-epochs", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    runs = {}
    for target in sizes:
        runs[str(target)] = run_size(target, args)
    payload: dict = {"sizes": runs, "events": max(r["events"] for r in runs.values()),
                     "settings": {"tiger_minutes": args.tiger_minutes, "rqvae_epochs": args.rqvae_epochs,
                                  "top_k": 20, "spark_master": "local[*]"}}
    if len(runs) >= 2:
        small, large = runs[str(sizes[0])], runs[str(sizes[-1])]
        growth = math.log(large["events"] / small["events"])
        exponents = {name: round(math.log(large["stages"][name]["seconds"] / small["stages"][name]["seconds"])
                                 / growth, 3)
                     for name in large["stages"] if name not in BUDGETED}
        spark_stages = [name for name in large["stages"] if name not in TORCH_TRAINERS]
        driver = {size: max(run["stages"][n]["driver_peak_rss_mb"] for n in spark_stages)
                  for size, run in (("small", small), ("large", large))}
        payload.update({
            "stages": {name: {"seconds": {str(sizes[0]): small["stages"][name]["seconds"],
                                          str(sizes[-1]): large["stages"][name]["seconds"]}}
                       for name in large["stages"]},
            "time_growth_exponent_by_stage": exponents,
            "time_growth_exponent": max(exponents.values()),
            "slowest_growing_stage": max(exponents, key=lambda n: exponents[n]),
            "driver_peak_rss_mb": driver,
            "driver_peak_rss_ratio": round(driver["large"] / driver["small"], 3),
            "trainer_peak_rss_mb": {name: {str(sizes[0]): small["stages"][name]["driver_peak_rss_mb"],
                                           str(sizes[-1]): large["stages"][name]["driver_peak_rss_mb"]}
                                    for name in TORCH_TRAINERS},
        })
        print(f"time growth exponent (worst stage, {payload['slowest_growing_stage']}): "
              f"{payload['time_growth_exponent']}; driver peak RSS ratio {payload['driver_peak_rss_ratio']}")
    write_results("scale", payload)


if __name__ == "__main__":
    main()
