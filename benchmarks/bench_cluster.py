"""The nightly flow on a real multi-process Spark cluster against S3, checked row for row against local[*].

    python -m benchmarks.bench_cluster [--users 2000] [--items 2000] [--workers 2]

A standalone master and `--workers` workers (each its own JVM, started with
spark-class on 127.0.0.1: pipelines/lakehouse/local_cluster.py) and the S3
server (pipelines/lakehouse/local_s3.py). Each job runs in its own process
as Airflow would launch it, against `s3://lake/cluster/...`:

  ingest -> (synthetic item vectors) -> train-rqvae -> assign-semantic-ids ->
  cluster-behaviors -> train-tiger -> generate-candidates

Then the same inputs on local[*] in this process with the models the cluster
run trained, and every table the flow writes is compared: the same rows,
apart from the columns a run stamps with its clock or ids, and model scores
within 0.1% (each engine batches users differently for the beam search, so
float sums differ in the last bits and near-tied items may swap ranks).
tests/spark/test_cluster.py runs this flow on a small input. Writes
benchmarks/results/cluster.json: master URL, executors, per-stage seconds,
same_rows_as_local per table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

RUN = "2026-11-24"
# columns a run stamps with its own clock or ids: the same rows differ there by construction
VOLATILE = {"ingested_at", "created_at", "updated_at", "computed_at", "assigned_at", "generated_at", "written_at",
            "batch_id", "run_id"}
# model scores: a beam search batches users differently on each engine, so float sums differ in the last bits
SCORES = {"score", "retriever_scores", "ranker_score"}
TABLES = ("silver.items", "silver.events", "gold.semantic_ids", "gold.user_clusters", "gold.candidates")
CANDIDATE_ARGS = ("--retrievers", "tiger", "--no-rerank", "--no-fallback", "--top-k", "5", "--final-k", "5",
                  "--tasks", "4")


@dataclass(frozen=True)
class FlowInputs:
    """Raw synthetic files and their items' vectors (the flow's gold.item_embeddings rows)."""

    raw: pathlib.Path
    embeddings: list[tuple]
    events: int

    @classmethod
    def synthetic(cls, directory: pathlib.Path, users: int, items: int, seed: int = 5) -> FlowInputs:
        import pyarrow.parquet as pq

        from pipelines.ingest.synthetic import (
            SynthConfig,
            generate,
            synthetic_item_embeddings,
            write_raw,
        )

        synth = SynthConfig(n_items=items, n_users=users, median_history=12, seed=seed)
        events = pq.read_metadata(write_raw(synth, str(directory))["events"]).num_rows
        frame, _ = generate(synth)
        vectors = synthetic_item_embeddings(frame, dim=16, seed=seed)
        rows = [(i, None, "synthetic-16", "synthetic", v.tolist())
                for i, v in zip(frame["item_id"], vectors, strict=True)]
        return cls(directory, rows, events)

    @property
    def ingest_args(self) -> tuple[str, ...]:
        return ("--format", "synthetic", "--path", str(self.raw))

    def write_embeddings(self, spark, catalog) -> None:
        from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS
        from pipelines.lakehouse.table_io import write_table

        write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                    spark.createDataFrame(self.embeddings, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite")


def _job(job: str, *args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", f"jobs.{job}", *args, "--run-date", RUN]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(f"{job} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def run_on_cluster(spark, inputs: FlowInputs, catalog, store, env: dict[str, str],
                   rqvae_epochs: int = 5) -> dict[str, float]:
    """Every stage as its own job process against `catalog`/`store` (the cluster's master in `env`); the
    item vectors are written by this process's `spark`. Seconds per stage."""
    common = ("--lakehouse", catalog.config.root, "--artifacts", store.root)
    stages: list[tuple[str, tuple[str, ...]]] = [
        ("ingest", ("ingest", *inputs.ingest_args)),
        ("train-rqvae", ("train_rqvae", "--epochs", str(rqvae_epochs))),
        ("assign-semantic-ids", ("assign_semantic_ids",)),
        ("cluster-behaviors", ("cluster_behaviors", "--holdout", "valid_test")),
        ("train-tiger", ("train_tiger", "--size", "test")),
        ("generate-candidates", ("generate_candidates", *CANDIDATE_ARGS)),
    ]
    seconds: dict[str, float] = {}
    for name, (job, *args) in stages:
        started = time.perf_counter()
        _job(job, *args, *common, env=env)
        seconds[name] = round(time.perf_counter() - started, 1)
        if name == "ingest":
            inputs.write_embeddings(spark, catalog)
    return seconds


def run_locally(spark, inputs: FlowInputs, catalog, store) -> None:
    """The same inputs on this process's session (local[*]) with the models in `store`."""
    from jobs.ingest import build_parser, config_from
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.candidates import CandidatesConfig, run_generate_candidates
    from pipelines.ingest.pipeline import run_ingest
    from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids

    run_date = dt.date.fromisoformat(RUN)
    run_ingest(spark, catalog, config_from(build_parser().parse_args([*inputs.ingest_args, "--run-date", RUN])))
    inputs.write_embeddings(spark, catalog)
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=run_date))
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=run_date, holdout="valid_test"))
    run_generate_candidates(spark, catalog, store, CandidatesConfig(
        run_date=run_date, retrievers=("tiger",), rerank=False, fallback=False, top_k=5, final_k=5, tasks=4))


def _comparable(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(every other column as text, sorted; the score columns as floats in the same order)."""
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
    keys = [c for c in frame.columns if c not in SCORES]
    order = frame[keys].astype(str).sort_values(keys).index
    exact = frame.loc[order, keys].astype(str).reset_index(drop=True)
    scores = [np.hstack(frame.loc[order, c].to_numpy()).astype(float) for c in sorted(SCORES & set(frame.columns))]
    return exact, (np.concatenate(scores) if scores else np.zeros(0))


def assert_same_rows(table: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """Raises AssertionError (pandas' message) unless the two runs wrote the same rows of `table`."""
    assert len(ours) > 0, f"{table} is empty"
    if table == "gold.candidates":
        # near-tied items of a list may swap ranks: every user gets the same items, ranks a permutation of 1..k
        def lists(frame: pd.DataFrame) -> pd.Series:
            return frame.groupby("user_id")["item_id"].apply(frozenset)

        pd.testing.assert_series_equal(lists(ours), lists(theirs))
        for frame in (ours, theirs):
            ranks = frame.groupby("user_id")["rank"].apply(lambda r: sorted(r.tolist()))
            assert all(r == list(range(1, len(r) + 1)) for r in ranks), table
        # the overall and per-retriever ranks follow those near-tied scores: compared as permutations above
        ours, theirs = (f.sort_values(["user_id", "item_id"]).drop(columns=["rank", "retriever_ranks"])
                        for f in (ours, theirs))
    exact_ours, scores_ours = _comparable(ours)
    exact_theirs, scores_theirs = _comparable(theirs)
    pd.testing.assert_frame_equal(exact_ours, exact_theirs, obj=table)
    np.testing.assert_allclose(scores_ours, scores_theirs, rtol=1e-3, equal_nan=True, err_msg=table)


def compare_tables(remote, local) -> dict[str, str | None]:
    """Per table the flow writes: None when both catalogs hold the same rows, else why not."""
    from pipelines.lakehouse.table_io import read_table_arrow

    found: dict[str, str | None] = {}
    for table in TABLES:
        try:
            assert_same_rows(table, read_table_arrow(remote, table)[0].to_pandas(),
                             read_table_arrow(local, table)[0].to_pandas())
            found[table] = None
        except AssertionError as exc:
            found[table] = str(exc)[:2000]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import os
    import shutil

    from benchmarks.common import write_results
    from pipelines.lakehouse.artifacts import ArtifactStore
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
    from pipelines.lakehouse.local_cluster import local_cluster
    from pipelines.lakehouse.local_s3 import local_s3
    from pipelines.lakehouse.spark import build_spark_session

    work = pathlib.Path(__file__).resolve().parent / ".work" / "cluster"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    inputs = FlowInputs.synthetic(work / "raw", args.users, args.items)
    with local_s3(work / "s3") as server, local_cluster(work / "cluster", workers=args.workers) as cluster:
        server.create_bucket("lake")
        os.environ.update(server.env)
        spark = build_spark_session(SparkConfig(app_name="bench-cluster", master="local[*]"))
        remote = Catalog(LakehouseConfig(root="s3://lake/cluster/lakehouse"))
        store = ArtifactStore(root="s3://lake/cluster/models")
        env = {**os.environ, "TIGERTWIN_SPARK_MASTER": cluster.master_url, "PYSPARK_PYTHON": sys.executable,
               "TIGERTWIN_ARTIFACT_CACHE": str(work / "driver-cache")}
        executors = cluster.alive_workers()
        print(f"cluster {cluster.master_url}: {executors} workers; the flow on S3", flush=True)
        seconds = run_on_cluster(spark, inputs, remote, store, env)
        print(f"  {seconds}", flush=True)
        local = Catalog(LakehouseConfig(root=str(work / "lakehouse")))
        started = time.perf_counter()
        run_locally(spark, inputs, local, store)
        local_seconds = round(time.perf_counter() - started, 1)
        differences = compare_tables(remote, local)
        spark.stop()
    for table, why in differences.items():
        print(f"  {table}: {'same rows' if why is None else why}")
    write_results("cluster", {
        "master": cluster.master_url, "executors": executors, "cores_per_executor": 1, "storage": "seaweedfs s3",
        "users": args.users, "items": args.items, "events": inputs.events,
        "stage_seconds": seconds, "local_run_seconds_in_process": local_seconds,
        "same_rows_as_local": {table: why is None for table, why in differences.items()},
        "differences": {table: why for table, why in differences.items() if why is not None},
    })


if __name__ == "__main__":
    main()
