"""Delta tables for Spark without the JVM connector (see DESIGN.md, "Delta tables without the JVM connector").

    write_table(spark, catalog, "silver.events", df, mode="overwrite", replace_partitions=[...])
    read_table(spark, catalog, "silver.events", version=3)

Writes go through the `tigertwin_delta` Python data source (Parquet on the
executors, one delta-rs commit on the driver). Reads take the snapshot's file
list from delta-rs and let Spark's native Parquet reader scan it. When the
session has the Delta connector, both use `format("delta")` instead.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from pipelines.delta.commit import (
    ConcurrentWriteError,
    SchemaMismatchError,
    WriteMode,
    check_schema,
    open_table,
)
from pipelines.tables import Catalog, get_spec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "ConcurrentWriteError",
    "DeltaWriteError",
    "SchemaMismatchError",
    "has_delta_connector",
    "read_delta",
    "read_table",
    "read_table_arrow",
    "table_version",
    "write_delta",
    "write_table",
]

log = logging.getLogger(__name__)


def has_delta_connector(spark: SparkSession) -> bool:
    """True when the session was built with Delta's JVM connector (then `format("delta")` is used)."""
    return "DeltaSparkSessionExtension" in (spark.conf.get("spark.sql.extensions", "") or "")


def _arrow_schema_of(df: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone="UTC")


def write_delta(
    spark: SparkSession,
    df: DataFrame,
    uri: str,
    *,
    mode: WriteMode,
    schema: pa.Schema | None = None,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[dict[str, object]] | None = None,
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
) -> int:
    """Write `df` to the Delta table at `uri` in one atomic commit; returns the new version.

    `schema` is the table's Arrow schema (the DataFrame's when None); columns are
    matched by name and a mismatch raises SchemaMismatchError naming the column.
    `replace_partitions` (with mode="overwrite") replaces only those partitions.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
    if replace_partitions is not None and mode != "overwrite":
        raise ValueError("replace_partitions needs mode='overwrite'")
    target = schema if schema is not None else _arrow_schema_of(df)
    check_schema(target, _arrow_schema_of(df), f"writing {uri}")
    df = df.select(*target.names)
    if partition_by:  # one task per partition value -> one file per partition, not one per task
        df = df.repartition(*partition_by)

    if has_delta_connector(spark):
        return _write_with_connector(spark, df, uri, mode, partition_by, replace_partitions)

    from pipelines.delta.source import FORMAT_NAME, DeltaDataSource, encode_schema

    spark.dataSource.register(DeltaDataSource)
    write_id = uuid.uuid4().hex[:16]
    writer = (
        df.write.format(FORMAT_NAME)
        .mode(mode)
        .option("path", uri)
        .option("schema", encode_schema(target))
        .option("write_id", write_id)
        .option("partition_by", ",".join(partition_by))
        .option("storage_options", json.dumps(storage_options or {}))
        .option("custom_metadata", json.dumps(custom_metadata or {}))
    )
    if replace_partitions is not None:
        writer = writer.option("replace_partitions", json.dumps(list(replace_partitions), default=str))
    log.info("writing %s (mode=%s, write id %s)", uri, mode, write_id)
    try:
        writer.save()
    except Exception as exc:
        raise DeltaWriteError(f"writing {uri} failed, table unchanged: {_python_cause(exc)}") from exc
    version = table_version(uri, storage_options)
    assert version is not None, f"commit to {uri} left no table"
    return version


class DeltaWriteError(RuntimeError):
    """A write failed in a task or at commit; its files were removed and the table is as it was."""


def _python_cause(exc: Exception) -> str:
    """The Python error inside Spark's wrapping (the message people need), else the first line."""
    import re

    text = str(exc)
    causes = re.findall(r"^(?:\w+\.)*(\w+(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    python_side = [c for c in causes if not c[0].startswith(("Py4J", "Spark", "Python"))]
    if python_side:
        name, message = python_side[-1]
        return f"{name}: {message}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def read_delta(
    spark: SparkSession,
    uri: str,
    *,
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> DataFrame:
    """The table's current snapshot, or `version` (time travel), as a Spark DataFrame."""
    if has_delta_connector(spark):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(uri)

    from pyspark.sql.pandas.types import from_arrow_schema

    table = open_table(uri, storage_options, version)
    if table is None:
        raise FileNotFoundError(f"no Delta table at {uri}; run the job that writes it first")
    arrow_schema = pa.schema(table.schema().to_arrow())
    spark_schema = from_arrow_schema(arrow_schema)
    files = table.file_uris()
    if not files:
        return spark.createDataFrame([], spark_schema)
    base = uri if "://" in uri else os.path.abspath(uri)
    return (
        spark.read.schema(spark_schema)
        .option("basePath", base)
        .parquet(*files)
        .select(*arrow_schema.names)
    )


def table_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    table = open_table(uri, storage_options)
    return None if table is None else table.version()


def write_table(
    spark: SparkSession,
    catalog: Catalog,
    name: str,
    df: DataFrame,
    *,
    mode: WriteMode,
    replace_partitions: Sequence[dict[str, object]] | None = None,
    custom_metadata: dict[str, str] | None = None,
) -> int:
    """Write a catalog table with its schema and partitioning enforced."""
    spec = get_spec(name)
    return write_delta(
        spark,
        df,
        catalog.location(name),
        mode=mode,
        schema=spec.schema,
        partition_by=spec.partition_by,
        replace_partitions=replace_partitions,
        storage_options=catalog.storage_options or None,
        custom_metadata=custom_metadata,
    )


def read_table(
    spark: SparkSession, catalog: Catalog, name: str, *, version: int | None = None
) -> DataFrame:
    get_spec(name)
    return read_delta(
        spark, catalog.location(name), version=version, storage_options=catalog.storage_options or None
    )


def read_table_arrow(
    catalog: Catalog, name: str, *, columns: Sequence[str] | None = None, version: int | None = None
) -> tuple[pa.Table, int]:
    """(snapshot as Arrow, its version) without Spark: for the torch jobs, which may run on GPU
    workers without a JVM. Partition columns come back from the hive-style paths."""
    import pyarrow.dataset as ds

    from pipelines.delta.files import filesystem_for

    spec = get_spec(name)
    uri = catalog.location(name)
    table = open_table(uri, catalog.storage_options or None, version)
    if table is None:
        raise FileNotFoundError(f"no Delta table {name} at {uri}; run the job that writes it first")
    schema = spec.schema
    files = table.file_uris()
    if not files:
        empty = schema.empty_table()
        return (empty.select(list(columns)) if columns else empty), table.version()
    fs, base = filesystem_for(uri, catalog.storage_options or None)
    paths = [filesystem_for(f, catalog.storage_options or None)[1] for f in files]
    partitioning = ds.partitioning(pa.schema([schema.field(c) for c in spec.partition_by]), flavor="hive")
    dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=fs,
                         partitioning=partitioning, partition_base_dir=base)
    return dataset.to_table(columns=list(columns) if columns else None), table.version()


def _write_with_connector(
    spark: SparkSession,
    df: DataFrame,
    uri: str,
    mode: WriteMode,
    partition_by: Sequence[str],
    replace_partitions: Sequence[dict[str, object]] | None,
) -> int:
    """The same write through Delta's own JVM connector, where the session has it."""
    from delta.tables import DeltaTable as SparkDeltaTable

    writer = df.write.format("delta").mode(mode)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_partitions is not None:
        clauses = [
            "(" + " AND ".join(f"`{c}` = '{v}'" for c, v in p.items()) + ")" for p in replace_partitions
        ]
        writer = writer.option("replaceWhere", " OR ".join(clauses) or "false")
    writer.save(uri)
    return SparkDeltaTable.forPath(spark, uri).history(1).collect()[0]["version"]

