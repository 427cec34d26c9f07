"""train-rqvae + assign-semantic-ids on a small synthetic catalog: unique, stable, cold start."""

import datetime as dt
import json

import pytest

from models.config import RQVAEConfig, RQVAETrainConfig
from pipelines.ingest.synthetic import SynthConfig, generate, synthetic_item_embeddings
from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids
from pipelines.items.rqvae_job import TrainRQVAEJobConfig, retrain_decision, run_train_rqvae
from pipelines.items.semantic_ids import SemanticIdCapacityError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table

RUN = dt.date(2026, 11, 24)
TRAIN = TrainRQVAEJobConfig(
    run_date=RUN,
    model=RQVAEConfig(hidden_dims=(32, 16), latent_dim=8, codebook_size=16),
    train=RQVAETrainConfig(epochs=8, batch_size=64, checkpoint_every=4),
)


def _write_embeddings(spark, catalog, items, vectors, mode="overwrite"):
    rows = [(i, None, "synthetic-16", "synthetic", v.tolist()) for i, v in zip(items, vectors, strict=True)]
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                spark.createDataFrame(rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode=mode)


def _ids(spark, catalog):
    table = read_table(spark, catalog, "gold.semantic_ids").toPandas()
    return table.set_index("item_id")


def test_train_assign_rerun_and_cold_start(spark, catalog, tmp_path):
    items, _ = generate(SynthConfig(n_items=300, n_users=2, median_history=5, seed=2))
    vectors = synthetic_item_embeddings(items, dim=16, seed=2)
    _write_embeddings(spark, catalog, items["item_id"], vectors)
    store = ArtifactStore(root=str(tmp_path / "artifacts"))

    trained = run_train_rqvae(catalog, store, TRAIN)
    card = json.loads((tmp_path / "artifacts" / "rqvae" / trained["version"] / "card.json").read_text())
    assert card["data"]["gold.item_embeddings"]["version"] == table_version(catalog.location(GOLD_ITEM_EMBEDDINGS.name))
    assert card["epochs_trained"] == 8 and store.latest_version("rqvae") == trained["version"]
    assert (tmp_path / "artifacts" / "rqvae" / trained["version"] / "code_usage.png").stat().st_size > 0
    assert run_train_rqvae(catalog, store, TRAIN)["reconstruction_loss"] == trained["reconstruction_loss"]  # resumed, not retrained

    assert retrain_decision(catalog, store, force=False, threshold=0.2)[0] is False  # no new items
    assert retrain_decision(catalog, store, force=True, threshold=0.2) == (True, "asked by the run's parameters")

    config = AssignSemanticIdsConfig(run_date=RUN)
    metrics = run_assign_semantic_ids(spark, catalog, store, config)
    first = _ids(spark, catalog)
    assert len(first) == 300 and first["semantic_id"].is_unique
    assert first["codes"].map(len).eq(4).all() and set(first["rqvae_version"]) == {trained["version"]}
    assert first.apply(lambda r: r.semantic_id == "-".join(map(str, r.codes)), axis=1).all()
    three_codes = first["codes"].map(lambda c: tuple(c[:3]))
    alone = three_codes.map(three_codes.value_counts()).eq(1).mean()  # items no other item shares 3 codes with
    assert metrics["ids_new"] == 300 and metrics["unique_3code_fraction"] == pytest.approx(alone)

    run_assign_semantic_ids(spark, catalog, store, config)  # rerun: same table
    again = _ids(spark, catalog)
    assert again["semantic_id"].sort_index().equals(first["semantic_id"].sort_index())

    # cold start: three new items, two of them copies of existing vectors (same 3 codes)
    new_ids = ["NEW-1", "NEW-2", "NEW-3"]
    _write_embeddings(spark, catalog, new_ids, [vectors[0], vectors[0], vectors[7]], mode="append")
    later = run_assign_semantic_ids(spark, catalog, store, config)
    after = _ids(spark, catalog)
    assert len(after) == 303 and after["semantic_id"].is_unique
    assert after.loc[first.index, "semantic_id"].equals(first["semantic_id"])  # nobody renumbered
    assert after.loc["NEW-1", "codes"][:3].tolist() == first.loc[items["item_id"].iloc[0], "codes"][:3].tolist()
    assert later["ids_kept"] == 300 and later["ids_new"] == 3
    assert later["new_item_share"] == pytest.approx(3 / 303)
    retrain, reason = retrain_decision(catalog, store, force=False, threshold=0.005)
    assert retrain and "1.0% of items are new" in reason

    with pytest.raises(SemanticIdCapacityError, match="exceed the 1 collision tokens"):
        run_assign_semantic_ids(spark, catalog, store, AssignSemanticIdsConfig(run_date=RUN, collision_capacity=1))
    assert _ids(spark, catalog)["semantic_id"].equals(after["semantic_id"])  # failed run left the table alone
