"""Catalog tables by name: the Delta bridge (delta/) given each table's location, schema and partitioning.

    write_table(spark, catalog, "silver.events", df, mode="overwrite", replace_partitions=[...])
    read_table(spark, catalog, "silver.events", version=3)

The bridge itself takes a location and a schema and knows nothing of the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from pipelines.lakehouse.catalog import Catalog, get_spec
from pipelines.lakehouse.delta.commit import WriteGuard, WriteMode
from pipelines.lakehouse.delta.reads import PartitionFilter, read_delta, read_delta_arrow
from pipelines.lakehouse.delta.writes import AT_WRITE_START, ReadVersion, write_delta

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_table(
    spark: SparkSession, catalog: Catalog, name: str, *, version: int | None = None,
    partitions: PartitionFilter | None = None,
) -> DataFrame:
    """A catalog table's snapshot (or `version`); `partitions` keeps only the files of the partitions it accepts."""
    get_spec(name)
    return read_delta(
        spark, catalog.location(name), version=version, storage_options=catalog.storage_options or None,
        partitions=partitions,
    )


def read_table_arrow(
    catalog: Catalog, name: str, *, columns: Sequence[str] | None = None, version: int | None = None
) -> tuple[pa.Table, int]:
    """A catalog table's snapshot as Arrow with its declared schema, and its version (no Spark)."""
    spec = get_spec(name)
    return read_delta_arrow(catalog.location(name), version=version, schema=spec.schema, columns=columns,
                            storage_options=catalog.storage_options or None)


def write_table(
    spark: SparkSession,
    catalog: Catalog,
    name: str,
    df: DataFrame,
    *,
    mode: WriteMode,
    replace_partitions: Sequence[dict[str, object]] | None = None,
    read_version: ReadVersion = AT_WRITE_START,
    allow_empty: bool = False,
    custom_metadata: dict[str, str] | None = None,
    guard: WriteGuard | None = None,
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
        read_version=read_version,
        allow_empty=allow_empty,
        storage_options=catalog.storage_options or None,
        custom_metadata=custom_metadata,
        guard=guard,
    )

