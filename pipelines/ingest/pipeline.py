"""Ingest on Spark: stage raw files, split good rows from bad, normalise, write silver + quarantine.

Transformations are DataFrame -> DataFrame functions; `run_ingest` is the only
place that reads or writes tables.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pipelines.config import logical_time
from pipelines.delta import read_table, table_version, write_table
from pipelines.ingest.formats import FORMATS, Kind, LineFormat, parse_lines, tabular_format
from pipelines.ingest.reader import FORMAT_NAME as LINES_FORMAT
from pipelines.ingest.reader import LinesDataSource
from pipelines.ops import write_metrics, write_quarantine
from pipelines.tables import SILVER_EVENTS, SILVER_ITEMS, Catalog

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGED_EVENTS = (
    "user_id string, item_id string, ts timestamp, event_type string, rating double, "
    "completion double, source string, row_number long, error string, raw string"
)
STAGED_ITEMS = (
    "item_id string, title string, brand string, categories array<string>, description string, "
    "price double, source string, row_number long, error string, raw string"
)
CONTENT_COLUMNS = ("title", "brand", "categories", "description", "price")
TABULAR_FORMATS = ("tabular", "synthetic")


class IngestError(RuntimeError):
    """The input has more bad rows than the configured tolerance; silver tables were not touched."""


@dataclass(frozen=True)
class IngestConfig:
    format: str  # movielens | sequences | amazon2014 | amazon2018 | amazon2023 | tabular | synthetic
    dataset: str  # short name, part of the run id
    run_date: dt.date
    events_paths: tuple[str, ...] = ()
    items_paths: tuple[str, ...] = ()
    # tabular: {silver column: source column}; synthetic files already use silver names.
    events_mapping: tuple[tuple[str, str], ...] = ()
    items_mapping: tuple[tuple[str, str], ...] = ()
    # merge: upsert items by id, replace only the event dates present; replace: both tables anew.
    mode: Literal["merge", "replace"] = "merge"
    k_core: int = 0  # 0 = off; else keep users and items with >= k events (iteratively)
    max_bad_fraction: float = 0.01

    @property
    def run_id(self) -> str:
        return f"ingest-{self.dataset}-{self.run_date.isoformat()}"


@dataclass(frozen=True)
class IngestReport:
    run_id: str
    counts: Mapping[str, int]
    quarantined_by_reason: Mapping[str, int] = field(default_factory=dict)
    versions: Mapping[str, int | None] = field(default_factory=dict)


def line_format(config: IngestConfig, kind: Kind) -> LineFormat:
    if config.format in TABULAR_FORMATS:
        columns = SILVER_EVENTS.schema.names if kind == "events" else SILVER_ITEMS.schema.names
        given = dict(config.events_mapping if kind == "events" else config.items_mapping)
        mapping = given or {c: c for c in columns if c not in ("content_hash", "updated_at", "event_date", "source")}
        return tabular_format(kind, mapping, event_type="play" if config.format == "synthetic" else "interaction")
    try:
        return FORMATS[config.format][kind]
    except KeyError:
        known = sorted([*FORMATS, *TABULAR_FORMATS])
        raise ValueError(f"format {config.format!r} has no {kind} files; formats: {known}") from None


def stage(spark: SparkSession, paths: tuple[str, ...], fmt: LineFormat, tabular: bool) -> DataFrame:
    """Raw files -> staged rows (silver columns + source, row_number, error, raw)."""
    import os

    for path in paths:  # fail on the driver, naming the file, not deep inside a Spark task
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"{fmt.kind} file {path!r} does not exist")
    spark.dataSource.register(LinesDataSource)
    lines = (
        spark.read.format(LINES_FORMAT)
        .option("paths", json.dumps(list(paths)))
        .option("encoding", fmt.encoding)
        .option("tabular", str(tabular).lower())
        .load()
    )
    schema = STAGED_EVENTS if fmt.kind == "events" else STAGED_ITEMS
    columns = [c.split()[0] for c in schema.split(", ")]

    def parse(batches):
        for batch in batches:
            yield parse_lines(batch, fmt).reindex(columns=columns)

    return lines.mapInPandas(parse, schema)


def bad_rows(staged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return staged.filter(F.col("error").isNotNull()).select(
        "source", "row_number", F.col("error").alias("reason"), "raw"
    )


def good_rows(staged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return staged.filter(F.col("error").isNull()).drop("error", "raw")


def latest_per_key(df: DataFrame, key: list[str], order: str = "row_number") -> DataFrame:
    """Keep one row per key: the one read last (a later line corrects an earlier one)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(*key).orderBy(F.col("source").desc(), F.col(order).desc())
    return df.withColumn("_n", F.row_number().over(window)).filter("_n = 1").drop("_n")


def with_content_hash(items: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    content = F.to_json(F.struct(*[F.col(c) for c in CONTENT_COLUMNS]))
    return items.withColumn("content_hash", F.sha2(content, 256))


def merge_items(new: DataFrame, existing: DataFrame | None, updated_at: dt.datetime) -> DataFrame:
    """Upsert by item_id. updated_at moves only when the content hash changes, so reruns are no-ops."""
    from pyspark.sql import functions as F

    new = new.withColumn("updated_at", F.lit(updated_at).cast("timestamp"))
    if existing is None:
        return new.select(*SILVER_ITEMS.schema.names)
    old = existing.select(
        "item_id", F.col("content_hash").alias("_old_hash"), F.col("updated_at").alias("_old_at")
    )
    refreshed = new.join(old, "item_id", "left").withColumn(
        "updated_at",
        F.when(F.col("_old_hash") == F.col("content_hash"), F.col("_old_at")).otherwise(F.col("updated_at")),
    )
    untouched = existing.join(new.select("item_id"), "item_id", "left_anti")
    return refreshed.select(*SILVER_ITEMS.schema.names).unionByName(untouched.select(*SILVER_ITEMS.schema.names))


def items_from_event_ids(events: DataFrame) -> DataFrame:
    """For sources without item files: the catalog is the set of item ids seen, with no content."""
    from pyspark.sql import functions as F

    return events.select("item_id").distinct().select(
        "item_id",
        F.lit(None).cast("string").alias("title"),
        F.lit(None).cast("string").alias("brand"),
        F.array().cast("array<string>").alias("categories"),
        F.lit(None).cast("string").alias("description"),
        F.lit(None).cast("double").alias("price"),
    )


def k_core(events: DataFrame, k: int, max_rounds: int = 20) -> DataFrame:
    """Iteratively keep users and items with at least k events (the '5-core' of the papers)."""
    from pyspark.sql import functions as F

    current = events
    previous = -1
    for _ in range(max_rounds):
        users = current.groupBy("user_id").count().filter(F.col("count") >= k).select("user_id")
        items = current.groupBy("item_id").count().filter(F.col("count") >= k).select("item_id")
        current = current.join(users, "user_id", "left_semi").join(items, "item_id", "left_semi").localCheckpoint()
        size = current.count()
        if size == previous:
            break
        previous = size
    return current


def run_ingest(spark: SparkSession, catalog: Catalog, config: IngestConfig) -> IngestReport:
    from pyspark.sql import functions as F

    run_ts = logical_time(config.run_date)
    tabular = config.format in TABULAR_FORMATS
    if not config.events_paths:
        raise ValueError("ingest needs at least one events file")
    counts: dict[str, int] = {}

    # 1. Stage and split. Cached: each staged row is parsed once.
    staged_events = stage(spark, config.events_paths, line_format(config, "events"), tabular).localCheckpoint()
    staged_items = (
        stage(spark, config.items_paths, line_format(config, "items"), tabular).localCheckpoint()
        if config.items_paths else None
    )
    events = good_rows(staged_events)
    bad_events = bad_rows(staged_events)
    bad_items = bad_rows(staged_items) if staged_items is not None else None

    # 2. Items: dedupe, hash, merge with the existing catalog.
    existing_items = None
    items_uri = catalog.location(SILVER_ITEMS.name)
    if config.mode == "merge" and table_version(items_uri, catalog.storage_options or None) is not None:
        existing_items = read_table(spark, catalog, SILVER_ITEMS.name).localCheckpoint()
    if staged_items is not None:
        new_items = good_rows(staged_items)
        counts["items_read"] = new_items.count()
        new_items = latest_per_key(new_items, ["item_id"])
        counts["items_duplicates_removed"] = counts["items_read"] - new_items.count()
    else:
        new_items = items_from_event_ids(events)
        if existing_items is not None:  # id-only rows must not blank out known content
            new_items = new_items.join(existing_items.select("item_id"), "item_id", "left_anti")
    items = merge_items(with_content_hash(new_items.drop("source", "row_number")), existing_items, run_ts)
    items = items.localCheckpoint()

    # 3. Events: unknown items to quarantine, dedupe, optional k-core.
    unknown = events.join(items.select("item_id"), "item_id", "left_anti")
    unknown_bad = unknown.select(
        "source", "row_number", F.concat(F.lit("unknown item: "), F.col("item_id")).alias("reason"),
        F.lit(None).cast("string").alias("raw"),
    )
    events = events.join(items.select("item_id"), "item_id", "left_semi").localCheckpoint()
    n_unknown = unknown.count()
    n_known = events.count()
    counts["events_read"] = n_known + n_unknown
    events = latest_per_key(events, list(SILVER_EVENTS.key)).localCheckpoint()
    counts["events_duplicates_removed"] = n_known - events.count()
    if config.k_core > 0:
        before = events.count()
        events = k_core(events, config.k_core)
        counts["events_removed_by_k_core"] = before - events.count()
    events = (
        events.drop("row_number")
        .withColumn("source", F.lit(config.dataset))
        .withColumn("event_date", F.to_date("ts"))
    )

    # 4. Quarantine, then the tolerance check (bad rows stay inspectable even when we stop).
    quarantine_events = bad_events.unionByName(unknown_bad).localCheckpoint()
    by_reason: dict[str, int] = {}
    for table, bad in ((SILVER_EVENTS.name, quarantine_events), (SILVER_ITEMS.name, bad_items)):
        if bad is None:
            continue
        write_quarantine(spark, catalog, table, config.run_id, bad)
        for row in bad.groupBy(F.substring_index("reason", ":", 1).alias("r")).count().collect():
            by_reason[f"{table}: {row['r']}"] = row["count"]
    counts["quarantined"] = sum(by_reason.values())
    # unknown-item events are both read and quarantined: count them once
    total = counts["events_read"] + counts.get("items_read", 0) + counts["quarantined"] - n_unknown
    for reason, n in sorted(by_reason.items()):
        log.warning("quarantined %d row(s): %s", n, reason)
    bad_fraction = counts["quarantined"] / max(total, 1)
    if bad_fraction > config.max_bad_fraction:
        raise IngestError(
            f"{counts['quarantined']} of {total} rows ({bad_fraction:.2%}) are bad, above the allowed "
            f"{config.max_bad_fraction:.2%}: {by_reason}. silver tables were not changed; see "
            f"ops.quarantine where run_id = '{config.run_id}'"
        )

    # 5. Silver tables, one atomic commit each.
    versions: dict[str, int | None] = {}
    meta = {"run_id": config.run_id}
    versions[SILVER_ITEMS.name] = write_table(spark, catalog, SILVER_ITEMS.name, items, mode="overwrite", custom_metadata=meta)
    if config.mode == "merge":
        dates = [{"event_date": r["event_date"]} for r in events.select("event_date").distinct().collect()]
        versions[SILVER_EVENTS.name] = write_table(
            spark, catalog, SILVER_EVENTS.name, events, mode="overwrite", replace_partitions=dates, custom_metadata=meta
        )
    else:
        versions[SILVER_EVENTS.name] = write_table(spark, catalog, SILVER_EVENTS.name, events, mode="overwrite", custom_metadata=meta)
    counts["items_written"] = items.count()
    counts["events_written"] = events.count()
    write_metrics(spark, catalog, "ingest", config.run_id, {**counts, **{f"quarantined[{k}]": v for k, v in by_reason.items()}}, run_ts)
    return IngestReport(config.run_id, counts, by_reason, versions)
