"""Writes to the ops tables (quarantine, metrics), idempotent per run id.

Both tables are partitioned by table/job; a run's rows are replaced by
rewriting its partition without them plus the new ones, in one commit
(copy-on-write), so rerunning a run id never duplicates rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pipelines.lakehouse.catalog import OPS_METRICS, OPS_QUARANTINE, Catalog
from pipelines.lakehouse.delta import retry_on_conflict, table_version
from pipelines.lakehouse.table_io import read_table, write_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def replace_run_rows(
    spark: SparkSession,
    catalog: Catalog,
    name: str,
    partition: Mapping[str, str],
    run_id: str,
    new_rows: DataFrame,
) -> int:
    """Replace the rows of `run_id` inside one partition of an ops table with `new_rows`.

    A read-modify-write of the partition: a concurrent writer of the same partition makes
    the commit conflict, and it is redone from a fresh read (never over the other's rows).
    """
    from pyspark.sql import functions as F

    def attempt() -> int:
        rows = new_rows
        version = table_version(catalog.location(name), catalog.storage_options or None)
        if version is not None:
            kept = read_table(spark, catalog, name, version=version)
            for col, value in partition.items():
                kept = kept.filter(F.col(col) == value)
            rows = kept.filter(F.col("run_id") != run_id).unionByName(new_rows)
        return write_table(spark, catalog, name, rows, mode="overwrite", replace_partitions=[dict(partition)],
                           read_version=version)

    return retry_on_conflict(attempt, what=f"{name} rows of {run_id}", attempts=8)


def write_quarantine(
    spark: SparkSession, catalog: Catalog, table: str, run_id: str, bad_rows: DataFrame
) -> int:
    """bad_rows: source, row_number, reason, raw (and raw_truncated). Tagged with run_id and table here."""
    from pyspark.sql import functions as F

    truncated = F.col("raw_truncated") if "raw_truncated" in bad_rows.columns else F.lit(False)
    rows = bad_rows.select(
        "source", "row_number", "reason", "raw", truncated.cast("boolean").alias("raw_truncated"),
        F.lit(run_id).alias("run_id"), F.lit(table).alias("table"),
    )
    return replace_run_rows(spark, catalog, OPS_QUARANTINE.name, {"table": table}, run_id, rows)


def has_metrics(spark: SparkSession, catalog: Catalog, job: str, run_id: str) -> bool:
    """Whether ops.metrics already holds rows of this job run."""
    from pyspark.sql import functions as F

    if table_version(catalog.location(OPS_METRICS.name), catalog.storage_options or None) is None:
        return False
    rows = read_table(spark, catalog, OPS_METRICS.name, partitions=lambda p: p.get("job") == job)
    return rows.filter(F.col("run_id") == run_id).limit(1).count() > 0


def write_metrics(
    spark: SparkSession,
    catalog: Catalog,
    job: str,
    run_id: str,
    metrics: Mapping[str, float | int | None],
    as_of: dt.datetime,
) -> int:
    """One row per metric; `as_of` is the run's logical time, not the wall clock."""
    rows = [(run_id, name, None if v is None else float(v), as_of, job) for name, v in metrics.items()]
    df = spark.createDataFrame(rows, OPS_METRICS.spark_schema())
    log.info("metrics for %s/%s: %s", job, run_id, dict(metrics))
    return replace_run_rows(spark, catalog, OPS_METRICS.name, {"job": job}, run_id, df)


def write_metrics_arrow(catalog: Catalog, job: str, run_id: str, metrics: Mapping[str, float | int | None],
                        as_of: dt.datetime) -> int:
    """write_metrics without Spark (torch jobs, model gates): the job's partition rewritten in one commit."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.lakehouse.delta import read_delta_arrow, write_delta_arrow

    uri, options = catalog.location(OPS_METRICS.name), catalog.storage_options or None
    new = pa.table({"run_id": [run_id] * len(metrics), "metric": list(metrics),
                    "value": [None if v is None else float(v) for v in metrics.values()],
                    "ts": [as_of] * len(metrics), "job": [job] * len(metrics)}, schema=OPS_METRICS.schema)
    log.info("metrics for %s/%s: %s", job, run_id, dict(metrics))

    def attempt() -> int:
        version = table_version(uri, options)
        rows = new
        if version is not None:
            current, _ = read_delta_arrow(uri, version=version, schema=OPS_METRICS.schema, storage_options=options)
            kept = current.filter(pc.and_(pc.equal(current["job"], job), pc.not_equal(current["run_id"], run_id)))
            rows = pa.concat_tables([kept.select(OPS_METRICS.schema.names).cast(OPS_METRICS.schema), new])
        return write_delta_arrow(rows, uri, mode="overwrite", schema=OPS_METRICS.schema,
                                 partition_by=OPS_METRICS.partition_by, replace_partitions=[{"job": job}],
                                 read_version=version, storage_options=options)

    return retry_on_conflict(attempt, what=f"{OPS_METRICS.name} rows of {run_id}", attempts=8)
