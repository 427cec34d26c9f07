"""Delta tables for Spark without the JVM connector (see DESIGN.md, "Delta tables without the JVM connector").

    write_table(spark, catalog, "silver.events", df, mode="overwrite", replace_partitions=[...])
    read_table(spark, catalog, "silver.events", version=3)

Writes (writes.py) land as one delta-rs commit, checked against the version
the data was read at (commit.py); the files come from Spark's own Parquet
writer on local filesystems (native.py), from the `tigertwin_delta` Python data
source on object stores (source.py), or from pyarrow without Spark. Reads
(reads.py) take the snapshot's file list from delta-rs and let Spark's Parquet
reader or pyarrow scan it. With the Delta connector, both use `format("delta")`.
This module only re-exports the public names.
"""

from pipelines.delta.commit import ConcurrentWriteError, SchemaMismatchError, WriteMode
from pipelines.delta.reads import (
    data_files,
    has_delta_connector,
    read_delta,
    read_delta_arrow,
    read_table,
    read_table_arrow,
    table_version,
)
from pipelines.delta.writes import (
    AT_WRITE_START,
    ReadVersion,
    retry_on_conflict,
    upsert_arrow,
    write_delta,
    write_delta_arrow,
    write_table,
)
from pipelines.errors import DeltaWriteError, EmptyOverwriteError

__all__ = [
    "AT_WRITE_START",
    "ConcurrentWriteError",
    "DeltaWriteError",
    "EmptyOverwriteError",
    "ReadVersion",
    "SchemaMismatchError",
    "WriteMode",
    "data_files",
    "has_delta_connector",
    "read_delta",
    "read_delta_arrow",
    "read_table",
    "read_table_arrow",
    "retry_on_conflict",
    "table_version",
    "upsert_arrow",
    "write_delta",
    "write_delta_arrow",
    "write_table",
]
