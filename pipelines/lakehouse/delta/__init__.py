"""Delta tables for Spark without the JVM connector (see DESIGN.md, "Delta tables without the JVM connector").

    write_delta(spark, df, "lakehouse/silver/events", mode="overwrite", schema=schema,
                partition_by=["event_date"], replace_partitions=[{"event_date": day}])
    read_delta(spark, "lakehouse/silver/events", version=3)

It takes a location and an Arrow schema, never the project's catalog
(pipelines/lakehouse/table_io.py maps catalog names onto it), so it could be
lifted out as a library.

Writes (writes.py) land as one delta-rs commit, checked against the version
the data was read at (commit.py); the files come from Spark's own Parquet
writer on local filesystems (native.py), from the `tigertwin_delta` Python data
source on object stores (source.py), or from pyarrow without Spark. Reads
(reads.py) take the snapshot's file list from delta-rs and let Spark's Parquet
reader or pyarrow scan it. With the Delta connector, both use `format("delta")`.
This module only re-exports the public names.
"""

from pipelines.errors import DeltaWriteError, EmptyOverwriteError
from pipelines.lakehouse.delta.commit import (
    ConcurrentWriteError,
    SchemaMismatchError,
    WriteGuard,
    WriteMode,
)
from pipelines.lakehouse.delta.reads import (
    data_files,
    has_delta_connector,
    read_delta,
    read_delta_arrow,
    table_version,
)
from pipelines.lakehouse.delta.writes import (
    AT_WRITE_START,
    ReadVersion,
    retry_on_conflict,
    upsert_arrow,
    write_delta,
    write_delta_arrow,
)

__all__ = [
    "AT_WRITE_START",
    "ConcurrentWriteError",
    "DeltaWriteError",
    "EmptyOverwriteError",
    "ReadVersion",
    "SchemaMismatchError",
    "WriteGuard",
    "WriteMode",
    "data_files",
    "has_delta_connector",
    "read_delta",
    "read_delta_arrow",
    "retry_on_conflict",
    "table_version",
    "upsert_arrow",
    "write_delta",
    "write_delta_arrow",
]
