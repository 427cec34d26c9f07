"""Ingest batches: a daily ingest that is idempotent without ever erasing another delivery's rows.

Every ingest run delivers one batch, keyed by dataset + run date + its input files, or by
`--batch-id`. silver.events is partitioned by (event_date, ingest_batch), so a batch's rows are
its own partitions: a rerun or a correction replaces exactly them in one commit, whatever days
they fall on, and late events for an earlier day sit beside that day's other batches.

The same event (user, item, time, source event id) delivered by two batches is kept once: the
first delivery stays in silver.events; later ones go to silver.event_redeliveries, are counted in
ops.metrics, and come back (under their own batch) when the batch that held the event drops it in
a correction. `keep_repeats` keeps every delivery, for sources whose events truly repeat.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipelines.errors import IngestError
from pipelines.lakehouse.catalog import SILVER_EVENT_REDELIVERIES, SILVER_EVENTS, Catalog
from pipelines.lakehouse.delta import WriteGuard, table_version
from pipelines.lakehouse.table_io import read_table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

# A batch id is a partition value: letters, digits and . _ + - only (see lakehouse/delta/files.py).
_BATCH_ID = re.compile(r"^[A-Za-z0-9._+\-]{1,200}$")
KEY = "_event_key"


def default_batch_id(dataset: str, run_date: dt.date, paths: Sequence[str]) -> str:
    """dataset.run-date.<12 hex of the input paths>: the same files on the same date are the same batch."""
    resolved = sorted(p if "://" in p else os.path.abspath(p) for p in paths)
    digest = hashlib.sha256(json.dumps(resolved).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._+\-]", "-", dataset) or "batch"
    return f"{name}.{run_date.isoformat()}.{digest}"


# Commit metadata key: what a batch's commits were computed from (its settings and its files' bytes).
INPUT_FINGERPRINT = "input_fingerprint"


def input_fingerprint(settings: str, paths: Sequence[str], chunk: int = 1 << 20) -> str | None:
    """sha256 of the run's settings and each input file's bytes, or None when an input is not a local
    file (remote inputs are always ingested: their bytes are not cheap to read twice)."""
    digest = hashlib.sha256(settings.encode())
    for path in paths:
        if "://" in path and not path.startswith("file://"):
            return None
        local = path.removeprefix("file://")
        if not os.path.isfile(local):
            return None
        digest.update(f"\0{os.path.abspath(local)}\0{os.path.getsize(local)}\0".encode())
        with open(local, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def check_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise IngestError(f"batch id {batch_id!r} may only hold letters, digits and . _ + - (at most 200)")
    return batch_id


def app_id(batch_id: str) -> str:
    """The Delta transaction id every commit of this batch records (two runs of it never both land unseen)."""
    return f"tigertwin-ingest:{batch_id}"


def event_key() -> Column:
    """One string per event key (user, item, time in microseconds, source event id); null-safe."""
    from pyspark.sql import functions as F

    return F.concat_ws("\u0001", "user_id", "item_id", F.unix_micros("ts").cast("string"),
                       F.coalesce("source_event_id", F.lit("")))


def _digest(rows: DataFrame) -> tuple[int, str]:
    """(row count, order-free sum of row hashes): equal for two frames holding the same rows."""
    from pyspark.sql import functions as F

    columns = [c for c in rows.columns if c != KEY]
    row = rows.select(F.xxhash64(*columns).cast("decimal(38,0)").alias("h")).agg(
        F.count(F.lit(1)).alias("n"), F.sum("h").alias("s")).collect()[0]
    return int(row["n"]), str(row["s"])


@dataclass(frozen=True)
class BatchWrite:
    """What one batch's ingest writes: rows and the partitions they replace, in both event tables."""

    batch_id: str
    events: DataFrame  # silver.events rows of the replaced partitions
    events_partitions: list[dict[str, object]]
    events_guard: WriteGuard
    redeliveries: DataFrame
    redeliveries_partitions: list[dict[str, object]]
    unchanged: bool  # the batch's rows are already exactly these: nothing to commit
    counts: dict[str, int] = field(default_factory=dict)
    duplicates_by_batch: dict[str, int] = field(default_factory=dict)


def plan_batch(
    spark: SparkSession, catalog: Catalog, batch_id: str, new: DataFrame, *, keep_repeats: bool,
    events_version: int | None, redeliveries_version: int | None,
) -> BatchWrite:
    """The merge of a batch's delivery `new` (silver.events columns) with the tables at the versions read.

    Reads only the partitions that matter: the batch's own, and the other batches' on the days it delivers.
    """
    from pyspark.sql import functions as F

    new = new.withColumn(KEY, event_key()).localCheckpoint()
    new_dates = sorted({r["event_date"] for r in new.select("event_date").distinct().collect()})
    new_days = {d.isoformat() for d in new_dates}
    events_cols = SILVER_EVENTS.schema.names

    def empty(spec) -> DataFrame:
        return spark.createDataFrame([], spec.spark_schema())

    if events_version is None:
        previous = other_days = empty(SILVER_EVENTS)
    else:
        _check_batched(catalog)
        current = read_table(spark, catalog, SILVER_EVENTS.name, version=events_version, partitions=lambda p: (
            p.get("ingest_batch") == batch_id or p.get("event_date") in new_days))
        previous = current.filter(F.col("ingest_batch") == batch_id)
        other_days = current.filter(F.col("ingest_batch") != batch_id)
    previous = previous.withColumn(KEY, event_key()).localCheckpoint()
    other_days = other_days.withColumn(KEY, event_key())

    if keep_repeats:
        kept, duplicates = new, new.limit(0).withColumn("kept_batch", F.lit(None).cast("string"))
    else:
        holders = other_days.groupBy(KEY).agg(F.min("ingest_batch").alias("kept_batch"))
        duplicates = new.join(holders, KEY, "inner").localCheckpoint()
        kept = new.join(holders, KEY, "left_anti")
    kept = kept.localCheckpoint()

    # Keys this batch held and no longer delivers: an earlier redelivery of them (another batch's) comes back.
    dropped = previous.select(KEY).join(kept.select(KEY), KEY, "left_anti")
    restored = empty(SILVER_EVENT_REDELIVERIES).withColumn(KEY, event_key())
    if redeliveries_version is not None and not keep_repeats:
        waiting = read_table(spark, catalog, SILVER_EVENT_REDELIVERIES.name, version=redeliveries_version,
                             partitions=lambda p: p.get("ingest_batch") != batch_id).withColumn(KEY, event_key())
        first = waiting.join(dropped, KEY, "left_semi").groupBy(KEY).agg(F.min("ingest_batch").alias("_first"))
        restored = waiting.join(first, KEY).filter(F.col("ingest_batch") == F.col("_first")).drop("_first")
    restored = restored.localCheckpoint()
    restored_parts = sorted({(r["event_date"], r["ingest_batch"])
                             for r in restored.select("event_date", "ingest_batch").distinct().collect()})
    restored_batches = sorted({b for _, b in restored_parts})

    events = kept.select(*events_cols)
    if restored_parts:  # the other batches' partitions that gain a row are rewritten whole (copy-on-write)
        wanted = {(d.isoformat(), b) for d, b in restored_parts}
        neighbours = read_table(spark, catalog, SILVER_EVENTS.name, version=events_version,
                                partitions=lambda p: (p.get("event_date"), p.get("ingest_batch")) in wanted)
        events = events.unionByName(neighbours.select(*events_cols)).unionByName(restored.select(*events_cols))
    own_dates = new_dates + [r["event_date"] for r in previous.select("event_date").distinct().collect()]
    events_partitions = [{"event_date": d, "ingest_batch": batch_id} for d in sorted(set(own_dates))]
    events_partitions += [{"event_date": d, "ingest_batch": b} for d, b in restored_parts]

    redeliveries = duplicates.select(*SILVER_EVENT_REDELIVERIES.schema.names)
    if restored_batches and redeliveries_version is not None:
        rest = read_table(spark, catalog, SILVER_EVENT_REDELIVERIES.name, version=redeliveries_version,
                          partitions=lambda p: p.get("ingest_batch") in restored_batches).withColumn(KEY, event_key())
        rest = rest.join(restored.select(KEY, "ingest_batch"), [KEY, "ingest_batch"], "left_anti")
        redeliveries = redeliveries.unionByName(rest.select(*SILVER_EVENT_REDELIVERIES.schema.names))
    redeliveries = redeliveries.localCheckpoint()

    n_dropped = dropped.count()
    counts = {
        "events_added": kept.select(KEY).join(previous.select(KEY), KEY, "left_anti").count(),
        "events_removed": n_dropped,
        "events_duplicate_across_batches": duplicates.count(),
        "events_restored_from_redeliveries": restored.count(),
    }
    unchanged = (not restored_parts and _digest(previous.select(*events_cols)) == _digest(kept.select(*events_cols))
                 and _same_redeliveries(spark, catalog, batch_id, redeliveries_version, duplicates))
    by_batch = {r["kept_batch"]: r["count"] for r in duplicates.groupBy("kept_batch").count().collect()}
    return BatchWrite(
        batch_id=batch_id, events=events, events_partitions=events_partitions,
        events_guard=WriteGuard.of([{"event_date": d} for d in new_dates], app_id(batch_id)),
        redeliveries=redeliveries,
        redeliveries_partitions=[{"ingest_batch": b} for b in [batch_id, *restored_batches]],
        unchanged=unchanged, counts=counts, duplicates_by_batch=by_batch,
    )


def _same_redeliveries(spark: SparkSession, catalog: Catalog, batch_id: str, version: int | None,
                       duplicates: DataFrame) -> bool:
    columns = SILVER_EVENT_REDELIVERIES.schema.names
    if version is None:
        return duplicates.limit(1).count() == 0
    stored = read_table(spark, catalog, SILVER_EVENT_REDELIVERIES.name, version=version,
                        partitions=lambda p: p.get("ingest_batch") == batch_id)
    return _digest(stored.select(*columns)) == _digest(duplicates.select(*columns))


def _check_batched(catalog: Catalog) -> None:
    """A silver.events written before batches existed cannot be merged into: say how to rebuild it."""
    from pipelines.lakehouse.delta.commit import open_table

    uri = catalog.location(SILVER_EVENTS.name)
    table = open_table(uri, catalog.storage_options or None)
    if table is not None and "ingest_batch" not in table.metadata().partition_columns:
        raise IngestError(f"{uri} predates ingest batches (partitioned by {table.metadata().partition_columns}); "
                          "move it aside and ingest its inputs again")


def versions_of_event_tables(catalog: Catalog) -> tuple[int | None, int | None]:
    opts = catalog.storage_options or None
    return (table_version(catalog.location(SILVER_EVENTS.name), opts),
            table_version(catalog.location(SILVER_EVENT_REDELIVERIES.name), opts))
