"""The catalog: every Delta table's name, schema, key and partitioning, in one place.

Schemas are Arrow schemas (the physical contract the Parquet files and the
Delta log share); Spark schemas are derived from them. Writes are checked
against these schemas and fail with the column's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pipelines.lakehouse.config import LakehouseConfig

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str  # "<layer>.<table>", e.g. "silver.events"
    schema: pa.Schema
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    description: str = ""

    @property
    def view_name(self) -> str:
        """SQL-friendly name for Spark/DuckDB views: silver.events -> silver_events."""
        return self.name.replace(".", "_")

    def spark_schema(self):  # -> pyspark StructType; imported lazily to keep this module JVM-free
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self.schema)


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields))


SILVER_ITEMS = TableSpec(
    name="silver.items",
    schema=_schema(
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("categories", pa.list_(pa.field("element", pa.string()))),
        pa.field("description", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("updated_at", _TS, nullable=False),
    ),
    key=("item_id",),
    description="One row per catalog item; content_hash changes when any content field does.",
)

_EVENT_FIELDS = (
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("item_id", pa.string(), nullable=False),
    pa.field("ts", _TS, nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("rating", pa.float64()),
    pa.field("completion", pa.float64()),
    pa.field("source", pa.string(), nullable=False),  # the dataset name given to ingest
    pa.field("source_event_id", pa.string()),  # the source's own event id, when it has one (part of the key)
    pa.field("source_file", pa.string(), nullable=False),  # the input file the row came from
    pa.field("source_line", pa.int64(), nullable=False),  # its 1-based line or row ordinal in that file
    pa.field("event_date", pa.date32(), nullable=False),
    pa.field("ingest_batch", pa.string(), nullable=False),  # the delivery that wrote it (see pipelines/ingest/batches.py)
)

SILVER_EVENTS = TableSpec(
    name="silver.events",
    schema=_schema(*_EVENT_FIELDS),
    key=("user_id", "item_id", "ts", "source_event_id"),
    # event_date first: reads prune by day; ingest_batch second: a rerun replaces exactly its own batch.
    partition_by=("event_date", "ingest_batch"),
    description="User-item interactions, one row per event key; completion in [0, 1] or null when unknown.",
)

SILVER_EVENT_REDELIVERIES = TableSpec(
    name="silver.event_redeliveries",
    schema=_schema(*_EVENT_FIELDS, pa.field("kept_batch", pa.string(), nullable=False)),
    key=("ingest_batch", "user_id", "item_id", "ts", "source_event_id"),
    partition_by=("ingest_batch",),
    description="Events a batch delivered that silver.events already held from an earlier batch (kept_batch); "
                "restored into silver.events when that batch's correction drops them.",
)

OPS_QUARANTINE = TableSpec(
    name="ops.quarantine",
    schema=_schema(
        pa.field("source", pa.string(), nullable=False),
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),  # the row as read, cut at 64 KiB
        pa.field("raw_truncated", pa.bool_()),  # true when raw was cut
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),
    ),
    key=("table", "run_id", "source", "row_number"),
    partition_by=("table",),
    description="Rows a job refused, with the file, 1-based row number and reason.",
)

OPS_METRICS = TableSpec(
    name="ops.metrics",
    schema=_schema(
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("ts", _TS, nullable=False),
        pa.field("job", pa.string(), nullable=False),
    ),
    key=("job", "run_id", "metric"),
    partition_by=("job",),
    description="One row per (job run, metric).",
)

_VECTOR = pa.list_(pa.field("element", pa.float32()))

GOLD_ITEM_EMBEDDINGS = TableSpec(
    name="gold.item_embeddings",
    schema=_schema(
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("content_hash", pa.string()),
        pa.field("model", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # text | als | concat | synthetic
        pa.field("embedding", _VECTOR, nullable=False),
    ),
    key=("item_id",),
    description="One vector per item and the model/source that made it.",
)

GOLD_USER_CLUSTERS = TableSpec(
    name="gold.user_clusters",
    schema=_schema(
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.int32(), nullable=False),
        pa.field("completion_group", pa.int32(), nullable=False),  # bucket of ratios; -1 = unknown
        pa.field("size", pa.int64(), nullable=False),  # n, the events in the cluster
        pa.field("centroid", _VECTOR, nullable=False),
        pa.field("representative_item_id", pa.string(), nullable=False),
        pa.field("completion_mean", pa.float64()),
        pa.field("rating_mean", pa.float64()),
        pa.field("recency_days_mean", pa.float64()),
        pa.field("first_ts", _TS, nullable=False),
        pa.field("last_ts", _TS, nullable=False),
        # the history this was computed from: a user is re-clustered when these change
        pa.field("history_events", pa.int64(), nullable=False),
        pa.field("history_last_ts", _TS, nullable=False),
        pa.field("history_digest", pa.string(), nullable=False),  # of every event's key and values
        pa.field("as_of", _TS, nullable=False),
    ),
    key=("user_id", "cluster_id"),
    description="TWIN-V2 clusters of each user's lifelong history.",
)

GOLD_USER_CLUSTER_MEMBERS = TableSpec(
    name="gold.user_cluster_members",
    schema=_schema(
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.int32(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("completion", pa.float64()),
        pa.field("rating", pa.float64()),
    ),
    key=("user_id", "item_id", "ts"),
    description="Which cluster each clustered event fell into (explains a cluster).",
)

GOLD_SEMANTIC_IDS = TableSpec(
    name="gold.semantic_ids",
    schema=_schema(
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("codes", pa.list_(pa.field("element", pa.int32())), nullable=False),  # 3 RQ-VAE codes + collision token
        pa.field("semantic_id", pa.string(), nullable=False),  # "a-b-c-d"
        pa.field("rqvae_version", pa.string(), nullable=False),
    ),
    key=("item_id",),
    description="TIGER semantic ID of every item, unique, stable within an RQ-VAE version.",
)

GOLD_CANDIDATES = TableSpec(
    name="gold.candidates",
    schema=_schema(
        pa.field("run_date", pa.date32(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),  # 1 = best
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("semantic_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),  # what the rank orders by: the fusion's score
        # the retrievers whose top-K held the item, and the rank (1 = best) and score each gave it
        pa.field("retrievers", pa.list_(pa.field("element", pa.string())), nullable=False),
        pa.field("retriever_ranks", pa.list_(pa.field("element", pa.int32())), nullable=False),
        pa.field("retriever_scores", pa.list_(pa.field("element", pa.float64())), nullable=False),
        pa.field("ranker_score", pa.float64()),  # TWIN-V2 logit; null when the ranker is off
        pa.field("source", pa.string(), nullable=False),  # the retrievers joined: tiger | sasrec | tiger+sasrec ...
        pa.field("model_version", pa.string(), nullable=False),  # every retriever's version: tiger=...,sasrec=...
        pa.field("ranker_version", pa.string()),
    ),
    key=("run_date", "user_id", "rank"),
    partition_by=("run_date",),
    description="Tonight's list per user: the retrievers' union ordered by the ranker's fusion; one partition "
                "per run date, replaced on rerun.",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        SILVER_ITEMS, SILVER_EVENTS, SILVER_EVENT_REDELIVERIES, OPS_QUARANTINE, OPS_METRICS,
        GOLD_ITEM_EMBEDDINGS, GOLD_USER_CLUSTERS, GOLD_USER_CLUSTER_MEMBERS,
        GOLD_SEMANTIC_IDS, GOLD_CANDIDATES,
    )
}


def get_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the catalog has {sorted(TABLES)}") from None


@dataclass(frozen=True)
class Catalog:
    """Maps table names to locations under one lakehouse root."""

    config: LakehouseConfig = LakehouseConfig()

    def location(self, name: str) -> str:
        layer, table = get_spec(name).name.split(".", 1)
        root = self.config.root.rstrip("/")
        return f"{root}/{layer}/{table}"

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self.config.storage_options)
