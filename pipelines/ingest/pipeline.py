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

from pipelines.errors import IngestError, MissingTableError
from pipelines.ingest.batches import (
    INPUT_FINGERPRINT,
    BatchWrite,
    check_batch_id,
    default_batch_id,
    input_fingerprint,
    plan_batch,
    versions_of_event_tables,
)
from pipelines.ingest.formats import FORMATS, Kind, LineFormat, parse_lines, tabular_format
from pipelines.ingest.reader import FORMAT_NAME as LINES_FORMAT
from pipelines.ingest.reader import (
    UNREADABLE,
    LinesDataSource,
    csv_header,
    is_parquet,
    parquet_columns,
)
from pipelines.ingest.records import TimeRange
from pipelines.lakehouse.catalog import (
    OPS_METRICS,
    SILVER_EVENT_REDELIVERIES,
    SILVER_EVENTS,
    SILVER_ITEMS,
    Catalog,
)
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.delta import retry_on_conflict, table_version
from pipelines.lakehouse.ops import has_metrics, write_metrics, write_quarantine
from pipelines.lakehouse.table_io import read_table, read_table_arrow, write_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGED_EVENTS = (
    "user_id string, item_id string, ts timestamp, event_type string, rating double, completion double, "
    "source_event_id string, source string, row_number long, error string, raw string, raw_truncated boolean"
)
STAGED_ITEMS = (
    "item_id string, title string, brand string, categories array<string>, description string, "
    "price double, source string, row_number long, error string, raw string, raw_truncated boolean"
)
CONTENT_COLUMNS = ("title", "brand", "categories", "description", "price")
TABULAR_FORMATS = ("tabular", "synthetic")
REQUIRED_COLUMNS: dict[Kind, tuple[str, ...]] = {"events": ("user_id", "item_id", "ts"), "items": ("item_id",)}


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
    # merge: upsert items by id, replace this batch's own events (batches.py); replace: both tables anew.
    mode: Literal["merge", "replace"] = "merge"
    # The delivery this run is (None: dataset + run date + input paths); a rerun of it replaces its rows.
    batch_id: str | None = None
    # Keep every delivery of an event key (sources whose events truly repeat) instead of the first.
    keep_repeats: bool = False
    k_core: int = 0  # 0 = off; else keep users and items with >= k events (iteratively)
    # Per input table (events, items): fail when more than this share of its rows is quarantined.
    max_bad_fraction: float = 0.01
    # Plausible event times: from here to the end of the day after the run date (clock skew, late
    # runs); outside is a unit or typing error (epoch 0, milliseconds read as seconds, year 3000).
    earliest_event_time: dt.datetime = dt.datetime(1995, 1, 1, tzinfo=dt.UTC)
    latest_event_days_ahead: int = 1

    @property
    def event_times(self) -> TimeRange:
        latest = logical_time(self.run_date + dt.timedelta(days=self.latest_event_days_ahead + 1))
        return TimeRange(self.earliest_event_time, latest - dt.timedelta(microseconds=1))

    @property
    def batch(self) -> str:
        if self.batch_id is not None:
            return check_batch_id(self.batch_id)
        return default_batch_id(self.dataset, self.run_date, [*self.events_paths, *self.items_paths])

    @property
    def run_id(self) -> str:
        return f"ingest-{self.batch}"


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
        derived = ("content_hash", "updated_at", "event_date", "source", "ingest_batch", "source_file", "source_line")
        mapping = given or {c: c for c in columns if c not in derived}
        return tabular_format(kind, mapping, event_type="play" if config.format == "synthetic" else "interaction")
    try:
        return FORMATS[config.format][kind]
    except KeyError:
        known = sorted([*FORMATS, *TABULAR_FORMATS])
        raise ValueError(f"format {config.format!r} has no {kind} files; formats: {known}") from None


def check_input_files(config: IngestConfig, kind: Kind, paths: tuple[str, ...], fmt: LineFormat) -> None:
    """On the driver, before any Spark task: every file exists, and a tabular file has the columns
    its mapping reads. Each problem is one IngestError naming the file."""
    import os

    for path in paths:
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"{kind} file {path!r} does not exist")
        if config.format not in TABULAR_FORMATS or "://" in path:
            continue
        columns = parquet_columns(path) if is_parquet(path) else csv_header(path, fmt.encoding)
        user_mapping = config.events_mapping if kind == "events" else config.items_mapping
        needed = [src for _, src in user_mapping] or [c for c in REQUIRED_COLUMNS[kind] if c in fmt.mapping]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise IngestError(f"{kind} file {path} has no column(s) {missing}; its columns are {columns}"
                              + ("" if user_mapping else f"; map yours with --{kind}-mapping"))


def stage(
    spark: SparkSession, paths: tuple[str, ...], fmt: LineFormat, tabular: bool, times: TimeRange
) -> DataFrame:
    """Raw files -> staged rows (silver columns + source, row_number, error, raw, raw_truncated)."""
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
            yield parse_lines(batch, fmt, times).reindex(columns=columns)

    return lines.mapInPandas(parse, schema)


def bad_rows(staged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return staged.filter(F.col("error").isNotNull()).select(
        "source", "row_number", F.col("error").alias("reason"), "raw", "raw_truncated"
    )


def good_rows(staged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return staged.filter(F.col("error").isNull()).drop("error")


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


@dataclass(frozen=True)
class InputCheck:
    """One input table's rows after parsing: what the per-table gate looks at."""

    table: str
    valid: int
    bad: int
    unreadable: tuple[str, ...] = ()  # "file: reason" for files that broke off


def check_gates(checks: list[InputCheck], max_bad_fraction: float, run_id: str) -> None:
    """Fail (IngestError) on an unreadable file, an input with no valid row, or too many bad rows."""
    see = f"see ops.quarantine where run_id = '{run_id}'; silver tables were not changed"
    for check in checks:
        total = check.valid + check.bad
        if check.unreadable:
            raise IngestError(f"{check.table} input: {check.unreadable[0]} ({see})")
        if total == 0:
            raise IngestError(f"{check.table} input has no rows: the files are empty")
        if check.valid == 0:
            raise IngestError(f"{check.table} input: none of its {total:,} rows is valid ({see})")
        if check.bad / total > max_bad_fraction:
            raise IngestError(
                f"{check.table} input: {check.bad:,} of {total:,} rows ({check.bad / total:.2%}) are bad, above "
                f"the allowed {max_bad_fraction:.2%} ({see})"
            )


@dataclass(frozen=True)
class Staged:
    """The parsed input, cached once: every later step (and a retry after a conflict) reads it."""

    events: DataFrame
    items: DataFrame | None


def stage_inputs(spark: SparkSession, config: IngestConfig) -> Staged:
    if not config.events_paths:
        raise ValueError("ingest needs at least one events file")
    tabular = config.format in TABULAR_FORMATS
    events_fmt = line_format(config, "events")
    check_input_files(config, "events", config.events_paths, events_fmt)
    events = stage(spark, config.events_paths, events_fmt, tabular, config.event_times).localCheckpoint()
    items = None
    if config.items_paths:
        items_fmt = line_format(config, "items")
        check_input_files(config, "items", config.items_paths, items_fmt)
        items = stage(spark, config.items_paths, items_fmt, tabular, config.event_times).localCheckpoint()
    return Staged(events, items)


def merged_items(
    spark: SparkSession, catalog: Catalog, config: IngestConfig, staged: Staged, counts: dict[str, int]
) -> tuple[DataFrame, int | None]:
    """(silver.items after this run, the version of silver.items it was merged with)."""
    items_uri = catalog.location(SILVER_ITEMS.name)
    read_version = table_version(items_uri, catalog.storage_options or None)
    existing = None
    if config.mode == "merge" and read_version is not None:
        existing = read_table(spark, catalog, SILVER_ITEMS.name, version=read_version).localCheckpoint()
    if staged.items is not None:
        new_items = good_rows(staged.items)
        counts["items_read"] = new_items.count()
        new_items = latest_per_key(new_items, ["item_id"])
        counts["items_duplicates_removed"] = counts["items_read"] - new_items.count()
    else:
        new_items = items_from_event_ids(good_rows(staged.events))
        if existing is not None:  # id-only rows must not blank out known content
            new_items = new_items.join(existing.select("item_id"), "item_id", "left_anti")
    new_items = with_content_hash(new_items.drop("source", "row_number", "raw", "raw_truncated"))
    run_ts = logical_time(config.run_date)
    return merge_items(new_items, existing, run_ts).localCheckpoint(), read_version


def split_events(
    events: DataFrame, items: DataFrame, config: IngestConfig, counts: dict[str, int]
) -> tuple[DataFrame, DataFrame]:
    """(silver rows of the run: known items, one row per key, optional k-core; unknown-item rows to quarantine)."""
    from pyspark.sql import functions as F

    unknown = events.join(items.select("item_id"), "item_id", "left_anti").select(
        "source", "row_number", F.concat(F.lit("unknown item: "), F.col("item_id")).alias("reason"),
        "raw", "raw_truncated",
    ).localCheckpoint()
    events = events.join(items.select("item_id"), "item_id", "left_semi").localCheckpoint()
    n_unknown, n_known = unknown.count(), events.count()
    counts["events_read"] = n_known + n_unknown
    counts["events_unknown_item"] = n_unknown
    if not config.keep_repeats:
        events = latest_per_key(events, list(SILVER_EVENTS.key)).localCheckpoint()
    counts["events_duplicates_removed"] = n_known - events.count()
    if config.k_core > 0:
        before = events.count()
        events = k_core(events, config.k_core)
        counts["events_removed_by_k_core"] = before - events.count()
    events = (
        events.drop("raw", "raw_truncated")
        .withColumnRenamed("source", "source_file")
        .withColumnRenamed("row_number", "source_line")
        .withColumn("source", F.lit(config.dataset))
        .withColumn("event_date", F.to_date("ts"))
        .withColumn("ingest_batch", F.lit(config.batch))
    )
    return events, unknown


def quarantine_and_gate(
    spark: SparkSession, catalog: Catalog, config: IngestConfig, staged: Staged, unknown: DataFrame,
    counts: dict[str, int],
) -> dict[str, int]:
    """Write this run's bad rows to ops.quarantine (inspectable even when the gates stop the run), then gate."""
    from pyspark.sql import functions as F

    by_reason: dict[str, int] = {}
    checks = []
    inputs: list[tuple[str, DataFrame, DataFrame | None, int]] = [
        (SILVER_EVENTS.name, staged.events, unknown, counts["events_read"] - counts["events_unknown_item"])
    ]
    if staged.items is not None:
        inputs.append((SILVER_ITEMS.name, staged.items, None, counts["items_read"]))
    for table, rows, extra_bad, valid in inputs:
        bad = bad_rows(rows)
        if extra_bad is not None:
            bad = bad.unionByName(extra_bad)
        bad = bad.localCheckpoint()
        write_quarantine(spark, catalog, table, config.run_id, bad)
        n_bad = 0
        for row in bad.groupBy(F.substring_index("reason", ":", 1).alias("r")).count().collect():
            by_reason[f"{table}: {row['r']}"] = row["count"]
            n_bad += row["count"]
        unreadable = tuple(
            f"{row['source']} is unreadable after row {row['row_number'] - 1}: {row['reason']}"
            for row in bad.filter(F.col("reason").startswith(UNREADABLE)).limit(1).collect()
        )
        checks.append(InputCheck(table, valid, n_bad, unreadable))
    counts["quarantined"] = sum(by_reason.values())
    for reason, n in sorted(by_reason.items()):
        log.warning("quarantined %d row(s): %s", n, reason)
    check_gates(checks, config.max_bad_fraction, config.run_id)
    return by_reason


def write_silver(
    spark: SparkSession, catalog: Catalog, config: IngestConfig, items: DataFrame, items_read_version: int | None,
    events: DataFrame, counts: dict[str, int], fingerprint: str | None = None,
) -> tuple[dict[str, int | None], bool]:
    """Items first, then this batch's events, then its redeliveries, one atomic commit each. A kill between
    two leaves every table at a committed version; rerunning the batch repairs them (each step is idempotent).
    Returns the tables' versions and whether silver.events already held exactly this delivery."""
    meta = {"run_id": config.run_id, "ingest_batch": config.batch}
    if fingerprint is not None:
        meta[INPUT_FINGERPRINT] = fingerprint
    versions: dict[str, int | None] = {}
    events_version, redeliveries_version = versions_of_event_tables(catalog)
    versions[SILVER_ITEMS.name] = write_table(
        spark, catalog, SILVER_ITEMS.name, items, mode="overwrite", read_version=items_read_version,
        custom_metadata=meta,
    )
    if config.mode == "replace":
        return {**versions, **_replace_events(spark, catalog, config, events, events_version, meta)}, False
    plan = plan_batch(spark, catalog, config.batch, events, keep_repeats=config.keep_repeats,
                      events_version=events_version, redeliveries_version=redeliveries_version)
    counts.update(plan.counts)
    counts.update({f"events_duplicate_across_batches[{b}]": n for b, n in sorted(plan.duplicates_by_batch.items())})
    _log_plan(config, plan)
    if plan.unchanged:
        log.info("batch %s: silver.events already holds exactly this delivery; nothing to commit", config.batch)
        versions[SILVER_EVENTS.name] = events_version
        versions[SILVER_EVENT_REDELIVERIES.name] = redeliveries_version
        return versions, True
    versions[SILVER_EVENTS.name] = write_table(
        spark, catalog, SILVER_EVENTS.name, plan.events, mode="overwrite", replace_partitions=plan.events_partitions,
        read_version=events_version, custom_metadata=meta, guard=plan.events_guard,
    )
    versions[SILVER_EVENT_REDELIVERIES.name] = write_table(
        spark, catalog, SILVER_EVENT_REDELIVERIES.name, plan.redeliveries, mode="overwrite",
        replace_partitions=plan.redeliveries_partitions, read_version=redeliveries_version, custom_metadata=meta,
    )
    return versions, False


def _log_plan(config: IngestConfig, plan: BatchWrite) -> None:
    c = plan.counts
    log.info("batch %s: %d event(s) added, %d removed, %d restored from other batches' redeliveries",
             config.batch, c["events_added"], c["events_removed"], c["events_restored_from_redeliveries"])
    for batch, n in sorted(plan.duplicates_by_batch.items()):
        log.warning("batch %s: %d event(s) were already delivered by batch %s; kept its copy "
                    "(silver.event_redeliveries holds these; --keep-repeats keeps both)", config.batch, n, batch)


def _replace_events(
    spark: SparkSession, catalog: Catalog, config: IngestConfig, events: DataFrame, events_version: int | None,
    meta: dict[str, str],
) -> dict[str, int | None]:
    """--mode replace: silver.events becomes this batch alone; says what it drops."""
    from pyspark.sql import functions as F

    if events_version is not None:
        old = read_table(spark, catalog, SILVER_EVENTS.name, version=events_version)
        stats = old.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("ingest_batch").alias("batches")).collect()[0]
        log.warning("--mode replace: dropping silver.events version %d (%d row(s) of %d batch(es)) for batch %s",
                    events_version, stats["rows"], stats["batches"], config.batch)
    empty = spark.createDataFrame([], SILVER_EVENT_REDELIVERIES.spark_schema())
    return {
        SILVER_EVENTS.name: write_table(spark, catalog, SILVER_EVENTS.name, events, mode="overwrite",
                                        read_version=events_version, custom_metadata=meta),
        SILVER_EVENT_REDELIVERIES.name: write_table(spark, catalog, SILVER_EVENT_REDELIVERIES.name, empty,
                                                    mode="overwrite", allow_empty=True, custom_metadata=meta),
    }


def ingest_fingerprint(config: IngestConfig) -> str | None:
    """What an ingest run's commits are computed from: its settings and its input files' bytes."""
    return input_fingerprint(repr(config), [*config.events_paths, *config.items_paths])


def already_ingested(catalog: Catalog, config: IngestConfig, fingerprint: str | None) -> int | None:
    """silver.events' version when the newest commit of every silver table ingest writes is this batch's,
    made from this very fingerprint, and ops.metrics holds the run's metrics (a run killed before them is
    not done): a rerun would read exactly what it wrote and commit nothing, so the caller may skip Spark.
    None otherwise. delta-rs only."""
    from pipelines.lakehouse.delta.commit import open_table

    if fingerprint is None:
        return None
    version = None
    for spec in (SILVER_ITEMS, SILVER_EVENTS, SILVER_EVENT_REDELIVERIES):
        table = open_table(catalog.location(spec.name), catalog.storage_options or None)
        if table is None:
            return None
        newest = table.history(1)[0]
        if newest.get("ingest_batch") != config.batch or newest.get(INPUT_FINGERPRINT) != fingerprint:
            return None
        if spec is SILVER_EVENTS:
            version = table.version()
    try:
        metrics, _ = read_table_arrow(catalog, OPS_METRICS.name, columns=["job", "run_id"])
    except MissingTableError:
        return None
    runs = set(zip(metrics.column("job").to_pylist(), metrics.column("run_id").to_pylist(), strict=True))
    return version if ("ingest", config.run_id) in runs else None


def run_ingest(spark: SparkSession, catalog: Catalog, config: IngestConfig,
               fingerprint: str | None = None) -> IngestReport:
    """Stage, merge, quarantine and gate, write silver; a concurrent writer's commit sends the
    merge back to a fresh read of silver (bounded), never over the other writer's rows. `fingerprint`
    (`batches.input_fingerprint`) is stamped on every commit, so an identical rerun can skip Spark."""
    staged = stage_inputs(spark, config)

    def attempt() -> IngestReport:
        counts: dict[str, int] = {}
        items, items_read_version = merged_items(spark, catalog, config, staged, counts)
        events, unknown = split_events(good_rows(staged.events), items, config, counts)
        events = events.localCheckpoint()
        by_reason = quarantine_and_gate(spark, catalog, config, staged, unknown, counts)
        versions, unchanged = write_silver(spark, catalog, config, items, items_read_version, events, counts,
                                          fingerprint)
        counts["items_written"] = items.count()
        # the batch's own rows: its delivery less the events another batch already holds
        counts["events_written"] = events.count() - counts.get("events_duplicate_across_batches", 0)
        metrics = {**counts, **{f"quarantined[{k}]": v for k, v in by_reason.items()}}
        # A rerun of a delivery silver already holds keeps the metrics of the run that wrote it.
        if not (unchanged and has_metrics(spark, catalog, "ingest", config.run_id)):
            write_metrics(spark, catalog, "ingest", config.run_id, metrics, logical_time(config.run_date))
        return IngestReport(config.run_id, counts, by_reason, versions)

    # Batches writing the same days conflict only at commit (one re-reads and dedups against the other).
    return retry_on_conflict(attempt, what=f"ingest {config.run_id}", attempts=12)
