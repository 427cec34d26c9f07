"""Spark's own Parquet writer for the data files of a Delta write on a local (or mounted) filesystem.

The Python data source (source.py) ships every row from the JVM to Python
workers as Arrow before Parquet is written, about twice the cost of Spark's
native writer. Where the table lives on a filesystem with cheap renames, the
files are written by Spark itself into a staging folder of the write
(`<table>/_tigertwin_staging/<write id>/`), then moved into the table's
hive-style layout under names that carry the write id, and their Delta stats
are read from the Parquet footers. The driver's commit (commit.py) is the
same as for the Python path; a failed write removes its staging folder and
every file carrying its id, and vacuum clears what a killed one left.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lakehouse.delta.files import (
    MAX_ROWS_PER_FILE,
    DataFile,
    footer_stats,
    partition_dir,
    partition_value_to_str,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STAGING = "_tigertwin_staging"
NOT_NULL_MARKER = "is NOT NULL in the table schema"


def conformed(df: DataFrame, schema: pa.Schema) -> DataFrame:
    """`df` cast to the table schema, failing the write (naming the column) on a null in a NOT NULL column."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_type

    nullable = {f.name: f.nullable for f in df.schema.fields}
    columns = []
    for field in schema:
        column = F.col(field.name).cast(from_arrow_type(field.type))
        if not field.nullable and nullable.get(field.name, True):
            message = f"column '{field.name}' {NOT_NULL_MARKER} but a row of this write is null"
            column = F.when(column.isNull(), F.raise_error(F.lit(message))).otherwise(column)
        columns.append(column.alias(field.name))
    return df.select(*columns)


def write_files(
    df: DataFrame, root: str, schema: pa.Schema, partition_by: Sequence[str], write_id: str
) -> list[DataFile]:
    """Write `df`'s rows as Parquet files of the table at local path `root`; returns them for the commit."""
    staging = pathlib.Path(root) / STAGING / write_id
    # Delta's timestamps are INT64 microseconds; Spark's default INT96 is not what readers expect
    df.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    rows = conformed(df, schema)
    if partition_by:
        # one task per partition value, so a write adds one file per partition (not one per task and
        # partition: 300 days x 2 tasks made 600 files for a few thousand events); big ones roll over
        rows = rows.repartition(*partition_by)
    writer = (rows.write.mode("errorifexists").option("compression", "snappy")
              .option("maxRecordsPerFile", MAX_ROWS_PER_FILE))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        writer.parquet(str(staging))
        return _move_into_table(staging, pathlib.Path(root), schema, partition_by, write_id)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_table(
    staging: pathlib.Path, root: pathlib.Path, schema: pa.Schema, partition_by: Sequence[str], write_id: str
) -> list[DataFile]:
    data_schema = pa.schema([f for f in schema if f.name not in partition_by])
    files = []
    for number, source in enumerate(sorted(staging.rglob("*.parquet"))):
        metadata = pq.read_metadata(source)
        if metadata.num_rows == 0:
            continue  # Spark writes an empty file for an empty unpartitioned write: nothing to add
        values = _partition_values(source.parent.relative_to(staging), partition_by)
        relative = f"{partition_dir(values)}part-{write_id}-{number:05d}.snappy.parquet"
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        info = target.stat()
        files.append(DataFile(path=relative, size=info.st_size, partition_values=values,
                              modification_time=int(info.st_mtime * 1000),
                              stats=footer_stats(metadata, data_schema)))
    return files


def _partition_values(folder: pathlib.Path, partition_by: Sequence[str]) -> dict[str, str | None]:
    """{column: Delta's string form} from Spark's `col=value/` folders (values are %-escaped there)."""
    found = dict(part.split("=", 1) for part in folder.parts)
    values: dict[str, str | None] = {}
    for column in partition_by:
        raw = urllib.parse.unquote(found[column])
        values[column] = None if raw == "__HIVE_DEFAULT_PARTITION__" else partition_value_to_str(raw, column)
    return values
