"""Candidate generation: the fast beam search against the reference, top-100, same model, same users.

    python -m benchmarks.bench_candidates [--run benchmarks/.work/amazon-beauty] [--users 300]

Reads the lakehouse and TIGER model a bench_tiger.py run left in `--run`
(lakehouse/ + artifacts/; no Spark), samples `--users` serving users, and
decodes their top-100 with the reference `beam_search` and with
`fast_beam_search`, alternating `--repeats` times (the faster of each is kept).
Both must return the same items: `identical_to_reference` holds when every user gets the same
item set and the fast order differs from the reference only between items whose reference
scores tie within float rounding (1e-5); exact position-by-position differences and the
largest score difference are reported beside it.
Then the nightly job itself over every serving user (TIGER's top-100, no rerank), on a copy of
the run's lakehouse: `generate-candidates --engine spark` with Spark local[1] and local[2], and
`--engine local` beside them; users/s there counts the whole job after the session is up
(grouping the events, beam search in the workers, the Delta commit). `--no-spark` skips it.
Writes benchmarks/results/candidates.json (the `cpu` block, or `<device>` on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

from benchmarks.common import RESULTS, write_results
from models.device import default_device
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.serving import load_tiger, tiger_top_k

WORK = pathlib.Path(__file__).resolve().parent / ".work"


def same_ranking(reference_items: torch.Tensor, reference_scores: torch.Tensor, items: torch.Tensor,
                 tolerance: float = 1e-5) -> bool:
    """Same items per row, in the same order except among reference scores tied within `tolerance`."""
    for ref_row, ref_scores, row in zip(reference_items.tolist(), reference_scores.tolist(), items.tolist(),
                                        strict=True):
        if sorted(ref_row) != sorted(row):
            return False
        score_of = dict(zip(ref_row, ref_scores, strict=True))
        in_fast_order = [score_of[i] for i in row if i >= 0]
        if any(b > a + tolerance for a, b in zip(in_fast_order, in_fast_order[1:], strict=False)):
            return False
    return True


def job_users_per_s(run: pathlib.Path, engine: str, master: str, top_k: int) -> float:
    """users/s that `generate-candidates` reports for every serving user, on a scratch copy of the lakehouse."""
    lakehouse = WORK / "candidates_lakehouse"
    shutil.rmtree(lakehouse, ignore_errors=True)
    shutil.copytree(run / "lakehouse", lakehouse)
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "generate-candidates", "--lakehouse", str(lakehouse),
         "--artifacts", str(run / "artifacts"), "--master", master, "--engine", engine, "--no-rerank",
         "--top-k", str(top_k), "--run-date", "2026-11-24", "--threads", re.sub(r"\D", "", master)],
        capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parents[1],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    found = re.search(r"users_per_s: ([\d,.]+)", done.stdout)
    if done.returncode or not found:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    shutil.rmtree(lakehouse, ignore_errors=True)
    return float(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(WORK / "amazon-beauty"),
                        help="a bench_tiger.py work folder with lakehouse/ and artifacts/ (default %(default)s)")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32, help="users per batch, both paths")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-spark", action="store_true", help="skip the whole-job runs")
    args = parser.parse_args()
    run = pathlib.Path(args.run)
    catalog = Catalog(LakehouseConfig(root=str(run / "lakehouse")))
    store = ArtifactStore(root=str(run / "artifacts"))
    if store.latest_version("tiger") is None:
        raise SystemExit(f"no TIGER model under {store.root}: run `python -m benchmarks.bench_tiger` first")
    inputs = load_retrieval_inputs(catalog)
    model, version, card = load_tiger(store, None, inputs.rqvae_version, None)
    serve = inputs.sequences.serve
    sample = np.random.default_rng(0).permutation(len(serve))[: args.users]
    users = serve.take(sample)
    seen = [inputs.sequences.serve_seen[i] for i in sample]

    def generate(fast: bool):
        return tiger_top_k(model, inputs.index, users, args.top_k, None, True, batch_size=args.batch_size,
                           progress=False, exclude_items=seen, fast=fast)

    seconds: dict[str, list[float]] = {"reference": [], "fast": []}
    results = {}
    for _ in range(args.repeats):
        for name in ("reference", "fast"):
            started = time.perf_counter()
            results[name] = generate(name == "fast")
            seconds[name].append(time.perf_counter() - started)
    reference, fast = results["reference"], results["fast"]
    finite = torch.isfinite(reference.scores)
    device = default_device(None).type
    block = {
        "reference_users_per_s": round(len(users) / min(seconds["reference"]), 2),
        "fast_users_per_s": round(len(users) / min(seconds["fast"]), 2),
        "speedup_vs_reference": round(min(seconds["reference"]) / min(seconds["fast"]), 2),
        "seconds": {k: [round(s, 2) for s in v] for k, v in seconds.items()},
        "threads": torch.get_num_threads(),
    }
    identical = same_ranking(reference.items, reference.scores, fast.items)
    print(f"{device}: reference {block['reference_users_per_s']} users/s, fast {block['fast_users_per_s']} users/s "
          f"({block['speedup_vs_reference']}x); identical items: {identical}")
    previous = RESULTS / "candidates.json"
    payload = json.loads(previous.read_text()) if previous.exists() else {}
    payload.pop("machine", None)
    payload.update({
        "dataset": run.name, "tiger_version": version, "parameters": card["parameters"], "users": len(users),
        "top_k": args.top_k, "beam_width": args.top_k, "batch_size": args.batch_size,
        device: block, "identical_to_reference": identical,
        "positions_differing": int((reference.items != fast.items).sum()),
        "max_score_difference": float((fast.scores[finite] - reference.scores[finite]).abs().max())
        if finite.any() else 0.0,
    })
    if not args.no_spark:
        job = {"users": len(serve), "top_k": args.top_k}
        for engine, master in (("spark", "local[1]"), ("spark", "local[2]"), ("local", "local[2]")):
            name = f"spark_{master}" if engine == "spark" else "local_engine_2_threads"
            job[f"{name}_users_per_s"] = round(job_users_per_s(run, engine, master, args.top_k), 2)
            print(f"generate-candidates --engine {engine} ({master}): {job[f'{name}_users_per_s']} users/s",
                  flush=True)
        job["spark_2_vs_1_cores"] = round(job["spark_local[2]_users_per_s"] / job["spark_local[1]_users_per_s"], 2)
        payload[f"{device}_job"] = job
    write_results("candidates", payload)


if __name__ == "__main__":
    main()
