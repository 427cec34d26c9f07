"""The lakehouse and the model store on S3 (a local SeaweedFS server, loopback only): Delta tables written
and read by Spark's executors without Hadoop's S3 connector, artifacts uploaded and loaded by any process,
and the jobs from ingest to tonight's candidates with `s3://` roots."""

import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pytest

from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.local_s3 import local_s3

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A running server with bucket `lake`; the AWS_* variables set for this module, restored after."""
    with local_s3(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket("lake")
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def test_spark_writes_and_reads_a_partitioned_delta_table_on_s3(spark, s3):
    from deltalake import DeltaTable

    from pipelines.lakehouse.delta import read_delta, write_delta

    schema = pa.schema([("user_id", pa.string()), ("score", pa.float64()), ("day", pa.date32())])
    rows = [(f"u{i}", float(i), dt.date(2026, 1, 1 + i % 3)) for i in range(50)]
    df = spark.createDataFrame(rows, "user_id string, score double, day date").repartition(4)
    uri = "s3://lake/spark/scores"
    assert write_delta(spark, df, uri, mode="overwrite", schema=schema, partition_by=("day",)) == 0
    back = read_delta(spark, uri)
    assert back.count() == 50 and sorted(map(tuple, back.collect())) == sorted(rows)
    assert read_delta(spark, uri, partitions=lambda p: p["day"] == "2026-01-02").count() == 17
    # the same table for delta-rs (another reader), and an append keeps every row
    write_delta(spark, df.limit(5), uri, mode="append", schema=schema, partition_by=("day",))
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 55


def test_artifacts_round_trip_through_the_object_store(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("TIGERTWIN_ARTIFACT_CACHE", str(tmp_path / "machine-a"))
    store = ArtifactStore(root="s3://lake/models")
    folder = store.directory("toy", "v1")
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"weights")
    (folder / "plot.png").write_bytes(b"png")
    store.write_card("toy", "v1", {"metrics": {"auc": 0.9}})
    assert store.versions("toy") == ["v1"] and store.latest_version("toy") == "v1"
    # another machine: an empty local copy, filled from the store and checked against the card
    monkeypatch.setenv("TIGERTWIN_ARTIFACT_CACHE", str(tmp_path / "machine-b"))
    assert store.resolve("toy", None) == "v1"
    assert (store.directory("toy", "v1") / "best.pt").read_bytes() == b"weights"
    assert store.read_card("toy", "v1")["metrics"] == {"auc": 0.9}
    second = store.directory("toy", "v2")
    second.mkdir(parents=True)
    (second / "best.pt").write_bytes(b"other weights")
    store.write_card("toy", "v2", {}, promote=True)
    assert store.rollback("toy") == "v1"
    assert [e["version"] for e in store.served_history("toy")] == ["v1", "v2", "v1"]
    assert store.models() == ["toy"]


def test_the_jobs_run_from_ingest_to_candidates_on_s3(spark, s3, tmp_path, monkeypatch):
    """ingest -> item vectors -> RQ-VAE -> semantic IDs -> clusters -> TIGER -> candidates -> evaluate,
    lakehouse and models both on S3; executors read tables and load models from the store themselves."""
    from models.config import RQVAEConfig, RQVAETrainConfig, TigerConfig, TigerTrainConfig
    from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
    from pipelines.candidates import CandidatesConfig, run_generate_candidates
    from pipelines.evaluation.evaluate import EvaluateConfig, run_evaluate
    from pipelines.ingest.pipeline import IngestConfig, run_ingest
    from pipelines.ingest.synthetic import (
        SynthConfig,
        generate,
        synthetic_item_embeddings,
        write_raw,
    )
    from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
    from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae
    from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, Catalog
    from pipelines.lakehouse.config import LakehouseConfig
    from pipelines.lakehouse.table_io import read_table, read_table_arrow, write_table
    from pipelines.retrieval.inputs import load_retrieval_inputs
    from pipelines.retrieval.popularity import fit_popularity
    from pipelines.retrieval.retriever import FitContext
    from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger

    monkeypatch.setenv("TIGERTWIN_ARTIFACT_CACHE", str(tmp_path / "cache"))
    catalog = Catalog(LakehouseConfig(root="s3://lake/flow/lakehouse"))
    store = ArtifactStore(root="s3://lake/flow/models")
    synth = SynthConfig(n_items=80, n_users=20, median_history=15, seed=3)
    paths = write_raw(synth, str(tmp_path / "raw"))
    report = run_ingest(spark, catalog, IngestConfig(format="synthetic", dataset="s", run_date=RUN,
                                                     events_paths=(paths["events"],), items_paths=(paths["items"],)))
    assert report.counts["events_written"] > 0
    items, _ = generate(synth)
    vectors = synthetic_item_embeddings(items, dim=16, seed=3)
    rows = [(i, None, "synthetic-16", "synthetic", v.tolist()) for i, v in zip(items["item_id"], vectors, strict=True)]
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                spark.createDataFrame(rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite")
    run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
        run_date=RUN, model=RQVAEConfig(hidden_dims=(32,), latent_dim=8, codebook_size=16),
        train=RQVAETrainConfig(epochs=3, batch_size=64)))
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN))
    ids, _ = read_table_arrow(catalog, "gold.semantic_ids")
    assert ids.num_rows == 80
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test"))
    assert read_table(spark, catalog, "gold.user_clusters").count() > 0
    run_train_tiger(catalog, store, TrainTigerJobConfig(
        run_date=RUN, model=TigerConfig.debug(codebook_size=256),
        train=TigerTrainConfig(epochs=1, batch_size=64, warmup_steps=5)))
    fit_popularity(FitContext(catalog, store, load_retrieval_inputs(catalog), RUN))
    run_generate_candidates(spark, catalog, store, CandidatesConfig(
        run_date=RUN, retrievers=("tiger",), top_k=5, final_k=5, rerank=False, tasks=2))
    candidates = read_table(spark, catalog, "gold.candidates").toPandas()
    assert candidates.user_id.nunique() == 20 and (candidates.groupby("user_id").size() == 5).all()
    metrics = run_evaluate(spark, catalog, store, EvaluateConfig(run_date=RUN, retrievers=("tiger", "popularity"),
                                                                 plot_dir=str(tmp_path / "plots")))
    assert set(metrics["results"]) >= {"tiger", "popularity"} and metrics["users"] == 20
    assert read_table(spark, catalog, "ops.metrics").filter("job = 'evaluate'").count() > 0
    # the model store holds every version; nothing was written under the local working directory's root
    assert set(store.models()) >= {"rqvae", "tiger", "popularity"}
    assert not os.path.exists("s3:")
    assert np.isfinite(candidates.score).all()
