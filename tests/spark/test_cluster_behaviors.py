"""The clustering job on Spark against the pure function, incrementality, quarantine, a large user."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.behavior.clustering_job import (
    BehaviorClusterConfig,
    cluster_user_frame,
    run_cluster_behaviors,
)
from pipelines.behavior.config import ClusteringConfig
from pipelines.ingest.synthetic import SynthConfig, generate, synthetic_item_embeddings
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, SILVER_EVENTS
from pipelines.lakehouse.table_io import read_table, write_table

RUN = dt.date(2026, 11, 24)
CONFIG = ClusteringConfig(gamma=10, seed=1)


def _events_frame(spark, events: pd.DataFrame, batch: str = "synth"):
    events = events.assign(source="synth", event_date=events["ts"].dt.date, source_event_id=None,
                           source_file=f"{batch}.parquet", source_line=events.index + 1, ingest_batch=batch)
    return spark.createDataFrame(events[SILVER_EVENTS.schema.names], SILVER_EVENTS.spark_schema())


def _load(spark, catalog, n_users=6, median=60, drop_embedding_of=()):
    items, events = generate(SynthConfig(n_items=150, n_users=n_users, median_history=median, seed=5))
    emb = synthetic_item_embeddings(items, dim=16, seed=5)
    keep = ~items["item_id"].isin(drop_embedding_of)
    rows = [(i, None, "synthetic-16", "synthetic", v.tolist()) for i, v, k in zip(items["item_id"], emb, keep, strict=True) if k]
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name,
                spark.createDataFrame(rows, GOLD_ITEM_EMBEDDINGS.spark_schema()), mode="overwrite")
    write_table(spark, catalog, SILVER_EVENTS.name, _events_frame(spark, events), mode="overwrite")
    return items, events, dict(zip(items["item_id"], emb, strict=True))


def test_table_matches_the_pure_function(spark, catalog):
    _, events, emb = _load(spark, catalog)
    report = run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, clustering=CONFIG))
    table = read_table(spark, catalog, "gold.user_clusters").toPandas()
    members = read_table(spark, catalog, "gold.user_cluster_members").toPandas()
    for user, history in events.groupby("user_id"):
        expected = cluster_user_frame(history.assign(embedding=history["item_id"].map(emb)), CONFIG)
        exp = expected[expected["kind"] == "cluster"].sort_values("cluster_id")
        got = table[table["user_id"] == user].sort_values("cluster_id")
        assert got["size"].tolist() == exp["size"].tolist()
        assert got["representative_item_id"].tolist() == exp["representative_item_id"].tolist()
        assert np.allclose(np.stack(got["centroid"]), np.stack(exp["centroid"]), atol=1e-6)
        assert (got["history_events"] == len(history)).all()
        assert len(members[members["user_id"] == user]) == len(history)  # every event in one cluster
    assert report.metrics["users_reclustered"] == events["user_id"].nunique()
    assert report.metrics["compression"] == len(events) / len(table)
    assert report.cluster_size_counts == table["size"].value_counts().to_dict()
    assert report.metrics["cluster_size_p90"] == np.percentile(table["size"], 90)
    metrics = read_table(spark, catalog, "ops.metrics").filter("job = 'cluster_behaviors'").count()
    assert metrics == len(report.metrics)


def test_only_changed_users_are_reclustered_in_one_commit(spark, catalog):
    _, events, _ = _load(spark, catalog)
    config = BehaviorClusterConfig(run_date=RUN, clustering=CONFIG)
    run_cluster_behaviors(spark, catalog, config)
    before = read_table(spark, catalog, "gold.user_clusters").toPandas()
    user = events["user_id"].iloc[0]
    extra = events[events["user_id"] == user].tail(3).assign(ts=lambda d: d["ts"] + pd.Timedelta(days=400))
    write_table(spark, catalog, SILVER_EVENTS.name, _events_frame(spark, extra), mode="append")
    report = run_cluster_behaviors(spark, catalog, config)
    assert report.metrics["users_reclustered"] == 1
    after = read_table(spark, catalog, "gold.user_clusters").toPandas()
    assert after[after["user_id"] == user]["history_events"].iloc[0] == (events["user_id"] == user).sum() + 3
    unchanged = lambda df: df[df["user_id"] != user].sort_values(["user_id", "cluster_id"])[  # noqa: E731
        ["user_id", "cluster_id", "size", "representative_item_id"]].reset_index(drop=True)
    assert unchanged(after).equals(unchanged(before))
    # a rerun with nothing new touches nobody
    assert run_cluster_behaviors(spark, catalog, config).metrics["users_reclustered"] == 0


def test_a_correction_that_keeps_count_and_latest_time_still_reclusters(spark, catalog):
    """A late correction swaps one old event for another: same event count, same latest event, new history."""
    _, events, _ = _load(spark, catalog)
    config = BehaviorClusterConfig(run_date=RUN, clustering=CONFIG)
    run_cluster_behaviors(spark, catalog, config)
    user = events["user_id"].iloc[0]
    history = events[events["user_id"] == user].sort_values("ts")
    oldest = history.iloc[[0]]
    swapped = oldest.assign(item_id=events.loc[events["item_id"] != oldest["item_id"].iloc[0], "item_id"].iloc[0])
    # rewrite the user's oldest event in place (its partition), as a corrected batch would
    rest = events.drop(index=oldest.index)
    write_table(spark, catalog, SILVER_EVENTS.name, _events_frame(spark, pd.concat([rest, swapped])), mode="overwrite")
    report = run_cluster_behaviors(spark, catalog, config)
    assert report.metrics["users_reclustered"] == 1


def test_events_without_embedding_are_quarantined_not_dropped(spark, catalog):
    items, events, _ = _load(spark, catalog, drop_embedding_of=["I000000", "I000001"])
    missing = events["item_id"].isin(["I000000", "I000001"]).sum()
    assert missing > 0
    report = run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, clustering=CONFIG))
    assert report.metrics["events_quarantined"] == missing
    assert report.metrics["events_clustered"] == len(events) - missing
    reasons = read_table(spark, catalog, "ops.quarantine").filter("table = 'gold.user_clusters'").toPandas()
    assert len(reasons) == missing and set(reasons["reason"]) == {"missing embedding"}


def test_holdout_leaves_test_events_out(spark, catalog):
    _, events, _ = _load(spark, catalog, n_users=3)
    run_cluster_behaviors(spark, catalog, BehaviorClusterConfig(run_date=RUN, clustering=CONFIG, holdout="test"))
    members = read_table(spark, catalog, "gold.user_cluster_members").toPandas()
    assert len(members) == len(events) - events["user_id"].nunique()
    clustered = set(zip(members["user_id"], members["item_id"], pd.to_datetime(members["ts"], utc=True), strict=True))
    for user, history in events.groupby("user_id"):
        ordered = history.sort_values(["ts", "item_id"])
        last, before_last = ordered.iloc[-1], ordered.iloc[-2]
        assert (user, last["item_id"], last["ts"]) not in clustered  # the test event
        assert (user, before_last["item_id"], before_last["ts"]) in clustered  # validation stays


@pytest.mark.parametrize("history", [150_000])
def test_large_user_is_capped_before_python(spark, catalog, history):
    _load(spark, catalog, n_users=2, median=20)
    rng = np.random.default_rng(0)
    big = pd.DataFrame({
        "user_id": "whale", "item_id": [f"I{i:06d}" for i in rng.integers(0, 150, history)],
        "ts": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(np.arange(history), unit="min"),
        "event_type": "play", "rating": np.nan, "completion": rng.random(history),
    })
    write_table(spark, catalog, SILVER_EVENTS.name, _events_frame(spark, big), mode="append")
    config = BehaviorClusterConfig(run_date=RUN, clustering=ClusteringConfig(gamma=20, max_events=50_000))
    report = run_cluster_behaviors(spark, catalog, config)
    assert report.metrics["events_over_history_cap"] == history - 50_000
    whale = read_table(spark, catalog, "gold.user_cluster_members").filter("user_id = 'whale'")
    assert whale.count() == 50_000
    oldest_kept = whale.agg({"ts": "min"}).first()[0]
    assert oldest_kept == (big["ts"].iloc[-50_000]).to_pydatetime().replace(tzinfo=None)
