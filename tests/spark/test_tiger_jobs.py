"""train-tiger -> generate-candidates -> evaluate on a small synthetic lakehouse."""

import dataclasses
import datetime as dt

import numpy as np
import pytest

from models.config import (
    RQVAEConfig,
    RQVAETrainConfig,
    TigerConfig,
    TigerTrainConfig,
    TwinConfig,
    TwinTrainConfig,
)
from pipelines.artifacts import ArtifactStore
from pipelines.behavior import BehaviorClusterConfig, run_cluster_behaviors
from pipelines.candidates import CandidatesConfig, run_generate_candidates
from pipelines.delta import read_table, write_table
from pipelines.evaluation import EvaluateConfig, run_evaluate
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.ingest.synthetic import SynthConfig, generate, synthetic_item_embeddings, write_raw
from pipelines.ranker import TrainTwinJobConfig, run_train_twin
from pipelines.ranking import BLEND_WEIGHTS
from pipelines.retrieval import TrainTigerJobConfig, UpstreamTableError, run_train_tiger
from pipelines.rqvae_training import TrainRQVAEJobConfig, run_train_rqvae
from pipelines.semantic_id_assignment import AssignSemanticIdsConfig, run_assign_semantic_ids
from pipelines.tables import GOLD_ITEM_EMBEDDINGS

RUN = dt.date(2026, 11, 24)


@pytest.fixture
def lakehouse(spark, catalog, tmp_path):
    synth = SynthConfig(n_items=120, n_users=25, median_history=20, seed=4)
    paths = write_raw(synth, str(tmp_path / "raw"))
    run_ingest(spark, catalog, IngestConfig(format="synthetic", dataset="s", run_date=RUN,
                                            events_paths=(paths["events"],), items_paths=(paths["items"],)))
    items, _ = generate(synth)
    vectors = synthetic_item_embeddings(items, dim=16, seed=4)
    rows = [(i, None, "synthetic-16", "synthetic", v.tolist()) for i, v in zip(items["item_id"], vectors, strict=True)]
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                spark.createDataFrame(rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite")
    store = ArtifactStore(root=str(tmp_path / "artifacts"))
    run_train_rqvae(catalog, store, TrainRQVAEJobConfig(
        run_date=RUN, model=RQVAEConfig(hidden_dims=(32,), latent_dim=8, codebook_size=16),
        train=RQVAETrainConfig(epochs=5, batch_size=64)))
    return store


def test_train_generate_rerun_evaluate(spark, catalog, lakehouse, tmp_path):
    store = lakehouse
    with pytest.raises(FileNotFoundError, match="gold.semantic_ids"):
        run_train_tiger(catalog, store, TrainTigerJobConfig(run_date=RUN))  # IDs not assigned yet
    run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN))

    config = TrainTigerJobConfig(run_date=RUN, model=TigerConfig.debug(codebook_size=256),
                                 train=TigerTrainConfig(epochs=2, batch_size=64, warmup_steps=10, eval_users=25))
    trained = run_train_tiger(catalog, store, config)
    card = store.read_card("tiger", trained["version"])
    assert card["data"]["gold.semantic_ids"] >= 0 and card["data"]["silver.events"] >= 0
    assert card["metrics"]["epochs"] == 2 and card["rqvae_version"] == store.latest_version("rqvae")
    assert trained["examples_per_s"] > 0 and 0 <= trained["best_valid_recall@10"] <= 1
    warm = run_train_tiger(catalog, store, dataclasses.replace(config, version="warm", warm_start=True))
    assert store.read_card("tiger", "warm")["warm_start"].endswith("best.pt") and warm["epochs"] == 2

    candidates = CandidatesConfig(run_date=RUN, top_k=5, tiger_version=trained["version"], rerank=False)
    metrics = run_generate_candidates(spark, catalog, store, candidates)
    table = read_table(spark, catalog, "gold.candidates").toPandas()
    assert metrics["users"] == 25 and len(table) == 25 * 5
    assert table.groupby("user_id")["rank"].apply(sorted).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    assert table.groupby("user_id")["item_id"].nunique().eq(5).all()
    assert set(table["model_version"]) == {trained["version"]} and table["ranker_score"].isna().all()
    ids = read_table(spark, catalog, "gold.semantic_ids").toPandas().set_index("item_id")["semantic_id"]
    assert (table["semantic_id"] == table["item_id"].map(ids)).all()  # every candidate is a real item
    events = read_table(spark, catalog, "silver.events").toPandas()
    seen = set(zip(events.user_id, events.item_id, strict=True))
    assert not any((u, i) in seen for u, i in zip(table.user_id, table.item_id, strict=True))

    run_generate_candidates(spark, catalog, store, candidates)  # rerun: the partition is replaced
    again = read_table(spark, catalog, "gold.candidates").toPandas()
    key = ["user_id", "rank"]
    assert again.sort_values(key).reset_index(drop=True)[["user_id", "rank", "item_id"]].equals(
        table.sort_values(key).reset_index(drop=True)[["user_id", "rank", "item_id"]])
    run_generate_candidates(spark, catalog, store, dataclasses.replace(candidates, run_date=RUN + dt.timedelta(1)))
    assert read_table(spark, catalog, "gold.candidates").count() == 2 * len(table)

    # the TWIN-V2 ranker needs clusters without the held-out events
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="none"))
    twin = TrainTwinJobConfig(run_date=RUN, model=TwinConfig(d_model=16, heads=2, head_dim=8, mlp_dims=(16,)),
                              train=TwinTrainConfig(epochs=2, negatives=4))
    with pytest.raises(UpstreamTableError, match="--holdout valid_test"):
        run_train_twin(catalog, store, twin)
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, holdout="valid_test", full_refresh=True))
    ranker = run_train_twin(catalog, store, twin)
    assert 0 <= ranker["test_auc"] <= 1 and store.read_card("twin", ranker["version"])["hard_negatives_from_tiger"]
    reranked = dataclasses.replace(candidates, rerank=True, top_k=10, final_k=4)
    run_generate_candidates(spark, catalog, store, reranked)
    final = read_table(spark, catalog, "gold.candidates").filter(f"run_date = '{RUN}'").toPandas()
    assert len(final) == 25 * 4 and set(final["source"]) == {"tiger+twin"}
    assert set(final["ranker_version"]) == {ranker["version"]} and final["ranker_score"].notna().all()
    assert final.sort_values(["user_id", "rank"]).groupby("user_id")["score"].apply(
        lambda s: s.is_monotonic_decreasing).all()
    blend = store.read_card("twin", ranker["version"])["blend"]  # w chosen on held-out validation users
    assert blend["calibration_users"] > 0 and set(blend["recall@10_by_weight"]) == {str(w) for w in BLEND_WEIGHTS}
    expected = final["ranker_score"] if blend["weight"] is None else (
        final["retrieval_score"] + blend["weight"] * final["ranker_score"])
    assert np.allclose(final["score"], expected)

    report = run_evaluate(spark, catalog, store, EvaluateConfig(run_date=RUN, plot_dir=str(tmp_path / "plots"),
                                                                rerank_from=10))
    assert set(report["results"]) == {"tiger", "popularity", "knn", "tiger+twin"}
    assert 0 <= report["results"]["tiger+twin"]["gauc"] <= 1
    assert all(0 <= report["results"][m]["recall@10"] <= 1 for m in report["results"])
    assert (tmp_path / "plots" / f"evaluation_{RUN.isoformat()}.png").exists()
    stored = read_table(spark, catalog, "ops.metrics").filter("job = 'evaluate'").toPandas()
    assert {"tiger/recall@10", "popularity/ndcg@5", "knn/recall@5"} <= set(stored["metric"])
