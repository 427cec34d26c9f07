"""The nightly flow on an object store (a local SeaweedFS S3 server) against local disk, same data.

    python -m benchmarks.bench_object_store [--users 2000] [--writers 8]

Both runs execute the same stages in one Spark session (local[*]) on the same
synthetic data: ingest -> item vectors -> train-rqvae -> assign-semantic-ids ->
cluster-behaviors -> train-tiger -> train-popularity -> generate-candidates ->
evaluate, lakehouse and models under `s3://lake/...` or a local folder. Each
stage reports its seconds and the objects (files) it added under the roots.
Then `--writers` processes write concurrently to Delta tables on S3 with the
reliability benchmark's writers (appends, partition overwrites, upserts) and
the same audit counts lost and duplicated rows. Writes
benchmarks/results/object_store.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable

from benchmarks.common import write_results

RUN = dt.date(2026, 11, 24)


def object_count(root: str) -> int:
    """Files under a local folder or an object-store prefix."""
    import pyarrow.fs as pafs

    from pipelines.lakehouse.delta.files import filesystem_for

    fs, path = filesystem_for(root)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sum(1 for i in infos if i.type == pafs.FileType.File)


def run_flow(spark, lakehouse: str, artifacts: str, raw: dict[str, str], users: int, items, vectors) -> dict:
    from models.config import RQVAEConfig, RQVAETrainConfig, TigerConfig, TigerTrainConfig
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.candidates import CandidatesConfig, run_generate_candidates
    from pipelines.evaluation.evaluate import EvaluateConfig, run_evaluate
    from pipelines.ingest.pipeline import IngestConfig, run_ingest
    from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
    from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae
    from pipelines.lakehouse.artifacts import ArtifactStore
    from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, Catalog
    from pipelines.lakehouse.config import LakehouseConfig
    from pipelines.lakehouse.table_io import write_table
    from pipelines.retrieval.inputs import load_retrieval_inputs
    from pipelines.retrieval.popularity import fit_popularity
    from pipelines.retrieval.retriever import FitContext
    from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

    catalog = Catalog(LakehouseConfig(root=lakehouse))
    store = ArtifactStore(root=artifacts)
    rows = [(i, None, "synthetic-32", "synthetic", v.tolist()) for i, v in zip(items["item_id"], vectors, strict=True)]
    stages: dict[str, Callable[[], object]] = {
        "ingest": lambda: run_ingest(spark, catalog, IngestConfig(
            format="synthetic", dataset="bench", run_date=RUN, events_paths=(raw["events"],),
            items_paths=(raw["items"],))),
        "item_vectors": lambda: write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, spark.createDataFrame(
            rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite"),
        "train_rqvae": lambda: run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
            run_date=RUN, model=RQVAEConfig(hidden_dims=(64,), latent_dim=16), train=RQVAETrainConfig(epochs=20))),
        "assign_semantic_ids": lambda: run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN)),
        "cluster_behaviors": lambda: run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(
            run_date=RUN, holdout="valid_test")),
        "train_tiger": lambda: run_train_tiger(catalog, store, TrainTigerJobConfig(
            run_date=RUN, model=TigerConfig.debug(causal_encoder=True),
            train=TigerTrainConfig(epochs=1, eval_users=500))),
        "train_popularity": lambda: fit_popularity(FitContext(catalog, store, load_retrieval_inputs(catalog), RUN)),
        "generate_candidates": lambda: run_generate_candidates(spark, catalog, store, CandidatesConfig(
            run_date=RUN, retrievers=("tiger",), rerank=False, top_k=20, final_k=20)),
        "evaluate": lambda: run_evaluate(spark, catalog, store, EvaluateConfig(
            run_date=RUN, retrievers=("tiger", "popularity"), nightly=False,
            plot_dir=tempfile.mkdtemp(prefix="bench-object-store-plots-"))),
    }
    out = {}
    for name, stage in stages.items():
        before = object_count(lakehouse) + object_count(artifacts)
        started = time.perf_counter()
        try:
            stage()
            ok = True
        except Exception as exc:  # a stage that fails is the result, not the end of the benchmark
            logging.exception("%s failed", name)
            ok, error = False, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        out[name] = {"ok": ok, "seconds": round(seconds, 2),
                     "objects_written": object_count(lakehouse) + object_count(artifacts) - before}
        if not ok:
            out[name]["error"] = error[:500]
            break
        print(f"  {name}: {seconds:.1f} s, {out[name]['objects_written']} objects", flush=True)
    return out


def concurrent_writers(root: str, writers: int, rounds: int, rows: int) -> dict:
    """The reliability benchmark's writers, `writers` processes at once on `root`; its audit."""
    from benchmarks.bench_reliability import audit, writer

    log_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench-object-store-"))
    logs = [str(log_dir / f"w{i}.jsonl") for i in range(writers)]
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    processes = [context.Process(target=writer, args=(root, i, rounds, rows, logs[i])) for i in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    acked = [json.loads(line) for path in logs if os.path.exists(path)
             for line in pathlib.Path(path).read_text().splitlines() if line.strip()]
    result = audit(root, acked, [])
    return {"writers": writers, "rounds": rounds, "acknowledged_writes": len(acked), "seconds": round(seconds, 1),
            "failed_writers": sum(1 for p in processes if p.exitcode), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--median-history", type=int, default=100)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    from pipelines.ingest.synthetic import (
        SynthConfig,
        generate,
        synthetic_item_embeddings,
        write_raw,
    )
    from pipelines.lakehouse.config import SparkConfig
    from pipelines.lakehouse.local_s3 import local_s3
    from pipelines.lakehouse.spark import build_spark_session

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-object-store-"))
    synth = SynthConfig(n_items=args.items, n_users=args.users, median_history=args.median_history, seed=11)
    raw = write_raw(synth, str(work / "raw"))
    items, events = generate(synth)
    vectors = synthetic_item_embeddings(items, dim=32, seed=11)
    with local_s3(work / "s3") as server:
        server.create_bucket("lake")
        os.environ.update(server.env)
        os.environ["TIGERTWIN_ARTIFACT_CACHE"] = str(work / "artifact-cache")
        spark = build_spark_session(SparkConfig(app_name="bench-object-store"))
        runs = {}
        for backend, lakehouse, artifacts in (("local", str(work / "lakehouse"), str(work / "artifacts")),
                                              ("s3", "s3://lake/flow/lakehouse", "s3://lake/flow/models")):
            print(f"{backend}:", flush=True)
            runs[backend] = run_flow(spark, lakehouse, artifacts, raw, args.users, items, vectors)
        spark.stop()
        audit = concurrent_writers("s3://lake/audit", args.writers, args.rounds, rows=200)
        print("concurrent writers on S3:", audit)
    stages = {name: {"ok": runs["s3"].get(name, {}).get("ok", False), "seconds": runs["s3"].get(name, {}).get("seconds"),
                     "objects_written": runs["s3"].get(name, {}).get("objects_written"),
                     "local_seconds": runs["local"].get(name, {}).get("seconds"),
                     "local_files_written": runs["local"].get(name, {}).get("objects_written"),
                     **({"error": runs["s3"][name]["error"]} if "error" in runs["s3"].get(name, {}) else {})}
              for name in runs["local"]}
    s3_total = sum(s["seconds"] or 0 for s in stages.values())
    local_total = sum(s["local_seconds"] or 0 for s in stages.values())
    write_results("object_store", {
        "backend": "seaweedfs", "events": len(events), "users": args.users, "items": args.items,
        "stages": stages, "all_ok": all(s["ok"] for s in stages.values()),
        "seconds_s3": round(s3_total, 1), "seconds_local": round(local_total, 1),
        "s3_over_local": round(s3_total / local_total, 2) if local_total else None,
        "rows_lost": audit["rows_lost"], "duplicated_rows": audit["duplicated_rows"], "concurrent_writers": audit,
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
