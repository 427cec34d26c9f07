"""Reads: a table's snapshot (or a time-travel version) in Spark or as Arrow, and its data files.

Reads take the snapshot's file list from delta-rs and let Spark's native
Parquet reader (or pyarrow) scan it; paths are built from the log's relative
paths so any local root works. On an object store (s3://, gs://, az://)
Spark's reader would need Hadoop's connector for it, so the executors read the
files through the `tigertwin_delta` data source (pyarrow filesystems) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from pipelines.errors import MissingTableError
from pipelines.lakehouse.delta.commit import open_table
from pipelines.lakehouse.delta.files import SnapshotFile, filesystem_for, object_store_options
from pipelines.lakehouse.delta.location import data_file_path, is_uri, normalize_location

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

def has_delta_connector(spark: SparkSession) -> bool:
    """True when the session was built with Delta's JVM connector (then `format("delta")` is used)."""
    return "DeltaSparkSessionExtension" in (spark.conf.get("spark.sql.extensions", "") or "")


PartitionFilter = Callable[[Mapping[str, str | None]], bool]


def snapshot_files(table, uri: str, partitions: PartitionFilter | None = None) -> list[SnapshotFile]:
    """The snapshot's data files as paths Spark and pyarrow read as they are (not percent-encoded), each
    with its partition values as strings; only files whose partition values `partitions` accepts, when given."""
    from pipelines.lakehouse.delta.files import partition_value_to_str

    root = normalize_location(uri)
    found = []
    for action in pa.table(table.get_add_actions(flatten=False)).to_pylist():
        values = {k: partition_value_to_str(v, k) for k, v in (action.get("partition") or {}).items()}
        if partitions is None or partitions(values):
            found.append(SnapshotFile(data_file_path(root, action["path"]), values))
    return found


def data_files(table, uri: str, partitions: PartitionFilter | None = None) -> list[str]:
    """`snapshot_files`' paths."""
    return [f.path for f in snapshot_files(table, uri, partitions)]


def read_delta(
    spark: SparkSession,
    uri: str,
    *,
    version: int | None = None,
    storage_options: dict[str, str] | None = None,
    partitions: PartitionFilter | None = None,
) -> DataFrame:
    """The table's current snapshot, or `version` (time travel), as a Spark DataFrame; with
    `partitions`, only the files of the partitions it accepts (no other file is listed or opened)."""
    uri = normalize_location(uri)
    if has_delta_connector(spark):
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if partitions is not None:
            raise NotImplementedError("partition filters with the Delta connector: filter the DataFrame instead")
        return reader.load(uri)

    from pyspark.sql.pandas.types import from_arrow_schema

    table = open_table(uri, storage_options, version)
    if table is None:
        raise MissingTableError(f"no Delta table at {uri}; run the job that writes it first")
    arrow_schema = pa.schema(table.schema().to_arrow())
    spark_schema = from_arrow_schema(arrow_schema)
    files = snapshot_files(table, uri, partitions)
    if not files:
        return spark.createDataFrame([], spark_schema)
    if is_uri(uri):
        # an object store: Spark's Parquet reader would need the hadoop-aws connector (Maven JARs); the
        # executors read the files themselves through pyarrow's filesystem instead
        from pyspark.sql.pandas.types import to_arrow_schema

        from pipelines.lakehouse.delta.source import FORMAT_NAME, read_options

        spark_arrow = to_arrow_schema(spark_schema, timezone="UTC")
        options = read_options(spark_arrow, files, object_store_options(storage_options),
                               files_per_partition(len(files), spark))
        return spark.read.format(FORMAT_NAME).options(**options).load().select(*arrow_schema.names)
    return (
        spark.read.schema(spark_schema)
        .option("basePath", uri)
        .option("__globPaths__", "false")  # a path with [ ] { } * ? is a name, not a pattern
        .parquet(*(f.path for f in files))
        .select(*arrow_schema.names)
    )


def read_delta_arrow(
    uri: str,
    *,
    version: int | None = None,
    schema: pa.Schema | None = None,
    columns: Sequence[str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> tuple[pa.Table, int]:
    """(snapshot as Arrow, its version) without Spark: for the torch jobs, which may run on GPU
    workers without a JVM. Partition columns come back from the hive-style paths; `schema`
    (default: the table's) is what the files are read as."""
    import pyarrow.dataset as ds

    uri = normalize_location(uri)
    table = open_table(uri, storage_options, version)
    if table is None:
        raise MissingTableError(f"no Delta table at {uri}; run the job that writes it first")
    schema = schema if schema is not None else pa.schema(table.schema().to_arrow())
    wanted = list(columns) if columns else None
    files = data_files(table, uri)
    if not files:
        empty = schema.empty_table()
        return (empty.select(wanted) if wanted else empty), table.version()
    fs, base = filesystem_for(uri, storage_options)
    paths = files if not is_uri(uri) else [filesystem_for(f, storage_options)[1] for f in files]
    partition_by = list(table.metadata().partition_columns)
    partitioning = ds.partitioning(pa.schema([schema.field(c) for c in partition_by]), flavor="hive")
    dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=fs,
                         partitioning=partitioning, partition_base_dir=base)
    return dataset.to_table(columns=wanted), table.version()


def files_per_partition(files: int, spark: SparkSession) -> int:
    """Files per Spark partition of an object-store read: about 4 partitions per core, never empty ones."""
    return max(1, files // max(1, 4 * spark.sparkContext.defaultParallelism))


def table_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    table = open_table(uri, storage_options)
    return None if table is None else table.version()
