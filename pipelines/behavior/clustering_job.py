"""TWIN-V2 clustering on Spark: silver.events + gold.item_embeddings -> gold.user_clusters (+ members).

Each user's history goes to one Python call (`applyInPandas`) of the pure
`cluster_history`. Memory per call is bounded by the history cap: the cap is
applied in Spark (most recent `max_events` per user) before any row reaches
Python, so a user with 10^6 events ships at most `max_events` rows, about
max_events x (4 x dim + 100) bytes (160 MB for 10^5 events of 384-d vectors).
Only users whose history changed since the last run (event count or last
timestamp) are re-clustered; each table is then rewritten in one commit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.behavior.clustering import cluster_history, mean_within_cluster_cosine
from pipelines.behavior.config import ClusteringConfig, Holdout
from pipelines.lakehouse.catalog import (
    GOLD_ITEM_EMBEDDINGS,
    GOLD_USER_CLUSTER_MEMBERS,
    GOLD_USER_CLUSTERS,
    SILVER_EVENTS,
    Catalog,
)
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table
from pipelines.splits import ORDER, SEQUENCE_COLUMNS, assign_roles_spark

_POSITION = ("source_file", "source_line")

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


# One output schema for every row kind the per-user function emits (cluster, member, rejected, user).
_OUTPUT = (
    "kind string, user_id string, cluster_id int, completion_group int, size long, centroid array<float>, "
    "representative_item_id string, completion_mean double, rating_mean double, recency_days_mean double, "
    "first_ts timestamp, last_ts timestamp, item_id string, ts timestamp, completion double, rating double, "
    "reason string, events long, clusters long, within_cosine double"
)
_OUTPUT_COLUMNS = [c.split(" ")[0] for c in _OUTPUT.split(", ")]
_NULLABLE_OBJECT_COLUMNS = [
    c.split(" ")[0] for c in _OUTPUT.split(", ") if c.split(" ")[1] in ("string", "array<float>")
]


@dataclass(frozen=True)
class BehaviorClusterConfig:
    run_date: dt.date
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    # Leave the held-out events of the shared split out of the clusters (models trained on them).
    holdout: Holdout = "none"
    full_refresh: bool = False  # re-cluster every user, not only the changed ones

    @property
    def as_of(self) -> dt.datetime:
        return logical_time(self.run_date)

    @property
    def run_id(self) -> str:
        return f"cluster-behaviors-{self.run_date.isoformat()}"


@dataclass(frozen=True)
class BehaviorClusterReport:
    run_id: str
    metrics: dict[str, float]
    cluster_size_counts: dict[int, int]  # n -> clusters of that size (this run's)


def _seconds(ts: pd.Series) -> np.ndarray:
    ts = pd.to_datetime(ts, utc=True)
    return ((ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64)


def cluster_user_frame(events: pd.DataFrame, config: ClusteringConfig) -> pd.DataFrame:
    """One user's events (user_id, item_id, ts, completion, rating, embedding) -> output rows of all kinds."""
    user = events["user_id"].iloc[0]
    # Spark delivers a group's rows in no fixed order and k-means depends on it: sort first.
    events = events.sort_values([c for c in ORDER if c in events.columns], kind="stable").reset_index(drop=True)
    vectors = events["embedding"].tolist()
    dim = next((len(v) for v in vectors if v is not None), 1)
    x = np.stack([np.asarray(v, np.float32) if v is not None else np.full(dim, np.nan, np.float32) for v in vectors])
    ts = _seconds(events["ts"])
    result = cluster_history(
        events["item_id"].to_numpy(), x, events["completion"].to_numpy(np.float64),
        events["rating"].to_numpy(np.float64), ts, config,
    )
    c = result.clusters
    to_ts = lambda s: pd.to_datetime(s, unit="s").to_numpy("datetime64[us]")  # noqa: E731  naive UTC
    clusters = pd.DataFrame({
        "kind": "cluster", "user_id": user, "cluster_id": c["cluster_id"].astype(np.int32),
        "completion_group": c["completion_group"].astype(np.int32), "size": c["size"].astype(np.int64),
        "centroid": c["centroid"], "representative_item_id": c["representative_item_id"],
        "completion_mean": c["completion_mean"], "rating_mean": c["rating_mean"],
        "recency_days_mean": c["recency_days_mean"], "first_ts": to_ts(c["first_ts"]), "last_ts": to_ts(c["last_ts"]),
    })
    kept = events.iloc[result.event_index]
    members = pd.DataFrame({
        "kind": "member", "user_id": user, "cluster_id": result.cluster_of_event.astype(np.int32),
        "item_id": kept["item_id"].to_numpy(), "ts": pd.to_datetime(kept["ts"], utc=True).to_numpy("datetime64[us]"),
        "completion": kept["completion"].to_numpy(), "rating": kept["rating"].to_numpy(),
    })
    bad = events.iloc[result.rejected["position"].to_numpy()]
    rejected = pd.DataFrame({
        "kind": "rejected", "user_id": user, "item_id": bad["item_id"].to_numpy(),
        "ts": pd.to_datetime(bad["ts"], utc=True).to_numpy("datetime64[us]"), "reason": result.rejected["reason"].to_numpy(),
    })
    cosine = mean_within_cluster_cosine(x[result.event_index], result.cluster_of_event) if len(c) else np.nan
    summary = pd.DataFrame({
        "kind": ["user"], "user_id": [user], "events": [len(result.event_index)], "clusters": [len(c)],
        "within_cosine": [cosine],
    })
    frames = [f for f in (clusters, members, rejected, summary) if len(f)]
    out = pd.concat(frames, ignore_index=True).reindex(columns=_OUTPUT_COLUMNS)
    # Columns a row kind does not use must be None, not NaN: pyspark cannot turn an
    # all-NaN float column into a string or array column.
    for column in _NULLABLE_OBJECT_COLUMNS:
        out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out


def history_fingerprint(events: DataFrame) -> DataFrame:
    """Per user: event count, latest event, and an order-free digest of every event's key and values, so a
    correction that swaps one old event for another (same count, same latest time) still re-clusters."""
    from pyspark.sql import functions as F

    hashed = F.xxhash64("item_id", "ts", "completion", "rating", *_POSITION).cast("decimal(38,0)")
    return events.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("history_events"), F.max("ts").alias("history_last_ts"),
        F.sha2(F.concat_ws(":", F.count(F.lit(1)).cast("string"), F.sum(hashed).cast("string")), 256)
        .alias("history_digest"),
    )


def cap_history(events: DataFrame, max_events: int) -> DataFrame:
    """Keep each user's most recent `max_events` events (TWIN-V2's cap), in Spark, before Python sees them."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    recent_first = Window.partitionBy("user_id").orderBy(*[F.col(c).desc() for c in ORDER])
    return events.withColumn("_rank", F.row_number().over(recent_first)).filter(
        F.col("_rank") <= max_events
    ).drop("_rank")


def cluster_users(events_with_embeddings: DataFrame, config: ClusteringConfig) -> DataFrame:
    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        return cluster_user_frame(pdf, config)

    return events_with_embeddings.groupBy("user_id").applyInPandas(per_user, _OUTPUT)


@dataclass(frozen=True)
class _Previous:
    """The clusters this run builds on: read at pinned versions (None: a full run), so that a concurrent
    rewrite between this read and our commit makes the commit conflict instead of being lost."""

    clusters: DataFrame | None
    clusters_version: int | None
    members_version: int | None


def _read_events(spark: SparkSession, catalog: Catalog, holdout: Holdout) -> DataFrame:
    """silver.events without the held-out roles the config names."""
    from pyspark.sql import functions as F

    events = read_table(spark, catalog, SILVER_EVENTS.name).select(*SEQUENCE_COLUMNS, "completion", "rating")
    if holdout == "none":
        return events
    held = ["test"] if holdout == "test" else ["valid", "test"]
    return assign_roles_spark(events).filter(~F.col("split").isin(held)).drop("split")


def _previous(spark: SparkSession, catalog: Catalog, full_refresh: bool) -> _Previous:
    options = catalog.storage_options or None
    clusters_version = table_version(catalog.location(GOLD_USER_CLUSTERS.name), options)
    members_version = table_version(catalog.location(GOLD_USER_CLUSTER_MEMBERS.name), options)
    incremental = not full_refresh and clusters_version is not None and members_version is not None
    clusters = read_table(spark, catalog, GOLD_USER_CLUSTERS.name, version=clusters_version) if incremental else None
    return _Previous(clusters, clusters_version, members_version)


def _users_to_recluster(fingerprint: DataFrame, previous: _Previous) -> DataFrame:
    """Users whose history (the digest of every event) differs from what their clusters were built from."""
    if previous.clusters is None:
        return fingerprint.select("user_id").localCheckpoint()
    seen = previous.clusters.select("user_id", "history_digest").distinct()
    changed = fingerprint.join(seen, ["user_id", "history_digest"], "left_anti")
    return changed.select("user_id").localCheckpoint()


def _events_over_cap(fingerprint: DataFrame, changed: DataFrame, cap: int) -> int:
    """Events the history cap drops, from the fingerprint: no second pass over the events."""
    from pyspark.sql import functions as F

    over = fingerprint.join(changed, "user_id", "left_semi").agg(
        F.sum(F.greatest(F.col("history_events") - cap, F.lit(0))).alias("n")).collect()[0]["n"]
    return int(over or 0)


def _outputs(spark: SparkSession, catalog: Catalog, config: BehaviorClusterConfig, rows: DataFrame,
             fingerprint: DataFrame, changed: DataFrame, previous: _Previous) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(clusters, members, rejected events): the new users' rows, plus the unchanged users' previous rows;
    users gone from the events are dropped."""
    from pyspark.sql import functions as F

    clusters = (rows.filter("kind = 'cluster'").join(fingerprint, "user_id")
                .withColumn("as_of", F.lit(config.as_of).cast("timestamp"))
                .select(*GOLD_USER_CLUSTERS.schema.names))
    members = rows.filter("kind = 'member'").select(*GOLD_USER_CLUSTER_MEMBERS.schema.names)
    rejected = rows.filter("kind = 'rejected'").select(
        F.lit(SILVER_EVENTS.name).alias("source"),
        F.lit(0).cast("long").alias("row_number"),  # rows from a table: the key is in raw
        F.col("reason"),
        F.to_json(F.struct("user_id", "item_id", "ts")).alias("raw"),
    )
    if previous.clusters is not None:
        keep = fingerprint.select("user_id").join(changed, "user_id", "left_anti")
        clusters = previous.clusters.join(keep, "user_id", "left_semi").unionByName(clusters)
        old_members = read_table(spark, catalog, GOLD_USER_CLUSTER_MEMBERS.name, version=previous.members_version)
        members = old_members.join(keep, "user_id", "left_semi").unionByName(members)
    return clusters, members, rejected


def _metrics(rows: DataFrame, users_reclustered: int, events_over_cap: int, quarantined: int
             ) -> tuple[dict[str, float], dict[int, int]]:
    """The run's metrics and its cluster-size histogram {n: clusters}, aggregated in Spark: the driver
    receives a few numbers and one row per distinct size, never a row per user or per cluster."""
    from pyspark.sql import functions as F

    users = rows.filter("kind = 'user'").agg(
        F.sum("events").alias("events"), F.sum("clusters").alias("clusters"),
        F.sum(F.coalesce(F.col("within_cosine"), F.lit(1.0)) * F.col("events")).alias("weighted_cosine"),
    ).collect()[0]
    size_counts = {int(r["size"]): int(r["count"])
                   for r in rows.filter("kind = 'cluster'").groupBy("size").count().collect()}
    sizes = np.repeat(np.fromiter(size_counts, dtype=np.int64, count=len(size_counts)),
                      np.fromiter(size_counts.values(), dtype=np.int64, count=len(size_counts)))
    n_events, n_clusters = int(users["events"] or 0), int(users["clusters"] or 0)
    metrics = {
        "users_reclustered": float(users_reclustered),
        "events_clustered": float(n_events),
        "clusters": float(n_clusters),
        "compression": n_events / max(n_clusters, 1),
        "cluster_size_p50": float(np.percentile(sizes, 50)) if len(sizes) else 0.0,
        "cluster_size_p90": float(np.percentile(sizes, 90)) if len(sizes) else 0.0,
        "cluster_size_max": float(sizes.max(initial=0)),
        "within_cluster_cosine": float(users["weighted_cosine"]) / n_events if n_events else float("nan"),
        "events_over_history_cap": float(events_over_cap),
        "events_quarantined": float(quarantined),
    }
    return metrics, size_counts


def run_cluster_behaviors(
    spark: SparkSession, catalog: Catalog, config: BehaviorClusterConfig
) -> BehaviorClusterReport:
    from pipelines.lakehouse.ops import write_metrics, write_quarantine

    events = _read_events(spark, catalog, config.holdout)
    embeddings = read_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name).select("item_id", "embedding")
    fingerprint = history_fingerprint(events).localCheckpoint()
    previous = _previous(spark, catalog, config.full_refresh)
    changed = _users_to_recluster(fingerprint, previous)
    n_changed = changed.count()
    log.info("%d of %d users to (re)cluster", n_changed, fingerprint.count())

    cap = config.clustering.max_events
    capped = cap_history(events.join(changed, "user_id", "left_semi"), cap)
    rows = cluster_users(capped.join(embeddings, "item_id", "left"), config.clustering).localCheckpoint()
    clusters, members, rejected = _outputs(spark, catalog, config, rows, fingerprint, changed, previous)

    meta = {"run_id": config.run_id}
    write_table(spark, catalog, GOLD_USER_CLUSTERS.name, clusters, mode="overwrite",
                read_version=previous.clusters_version, custom_metadata=meta)
    write_table(spark, catalog, GOLD_USER_CLUSTER_MEMBERS.name, members, mode="overwrite",
                read_version=previous.members_version, custom_metadata=meta)
    write_quarantine(spark, catalog, GOLD_USER_CLUSTERS.name, config.run_id, rejected)

    metrics, size_counts = _metrics(rows, n_changed, _events_over_cap(fingerprint, changed, cap), rejected.count())
    write_metrics(spark, catalog, "cluster_behaviors", config.run_id, metrics, config.as_of)
    log.info("clustering metrics: %s", json.dumps(metrics))
    return BehaviorClusterReport(config.run_id, metrics, size_counts)
