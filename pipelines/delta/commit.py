"""Driver side of a Delta write: one atomic commit of the files the tasks wrote (delta-rs)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Literal

import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    create_table_with_add_actions,
)

from pipelines.delta.files import DataFile, partition_value_to_str

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite"]


class SchemaMismatchError(ValueError):
    """The data does not fit the table's schema; the message names the column."""


class ConcurrentWriteError(RuntimeError):
    """Another writer replaced the same data first; rerunning the job is safe."""


def open_table(uri: str, storage_options: dict[str, str] | None = None, version: int | None = None):
    """The DeltaTable at `uri`, or None when no table exists there yet."""
    try:
        return DeltaTable(uri, version=version, storage_options=storage_options)
    except TableNotFoundError:
        return None


def _type_name(t: pa.DataType) -> str:
    # Compare by logical type: list item field names and nullability differ between writers.
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{_type_name(t.value_type)}>"
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return f"timestamp[{'utc' if t.tz else 'ntz'}]"
    return str(t)


def check_schema(expected: pa.Schema, actual: pa.Schema, what: str) -> None:
    """Raise SchemaMismatchError naming the first column that differs."""
    actual_types = {f.name: f.type for f in actual}
    for field in expected:
        if field.name not in actual_types:
            raise SchemaMismatchError(f"{what}: column {field.name!r} is missing")
        if _type_name(field.type) != _type_name(actual_types[field.name]):
            raise SchemaMismatchError(
                f"{what}: column {field.name!r} has type {actual_types[field.name]}, "
                f"expected {field.type}"
            )
    extra = [name for name in actual_types if name not in expected.names]
    if extra:
        raise SchemaMismatchError(f"{what}: unexpected column(s) {extra}")


def _remove_actions(table: DeltaTable, partitions: Sequence[dict[str, str | None]]) -> list[RemoveAction]:
    """RemoveActions for every live file in the given partitions."""
    wanted = {tuple(sorted(p.items())) for p in partitions}
    now_ms = int(time.time() * 1000)
    actions = []
    for add in pa.table(table.get_add_actions(flatten=False)).to_pylist():
        values = add.get("partition") or {}
        as_str = {k: partition_value_to_str(v, k) for k, v in values.items()}
        if tuple(sorted(as_str.items())) in wanted:
            actions.append(
                RemoveAction(
                    path=add["path"],
                    data_change=True,
                    deletion_timestamp=now_ms,
                    size=add["size_bytes"],
                    partition_values=as_str,
                )
            )
    return actions


def commit_files(
    uri: str,
    schema: pa.Schema,
    files: Iterable[DataFile],
    *,
    mode: WriteMode,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[dict[str, object]] | None = None,
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
) -> int:
    """Commit the written files as one Delta transaction and return the new table version.

    mode="append" adds them; mode="overwrite" replaces the whole table, or only
    `replace_partitions` (a list of {column: value}) when given, in the same commit.
    """
    adds = [
        AddAction(
            path=f.path,
            size=f.size,
            partition_values=f.partition_values,
            modification_time=f.modification_time,
            data_change=True,
            stats=f.stats,
        )
        for f in files
    ]
    props = CommitProperties(custom_metadata=custom_metadata)
    table = open_table(uri, storage_options)
    if table is None:
        log.info("creating Delta table %s with %d file(s)", uri, len(adds))
        create_table_with_add_actions(
            uri,
            schema=Schema.from_arrow(schema),
            add_actions=adds,
            mode="error",
            partition_by=list(partition_by) or None,
            storage_options=storage_options,
            commit_properties=props,
        )
        return 0

    check_schema(schema, pa.schema(table.schema().to_arrow()), f"Delta table {uri}")
    if list(table.metadata().partition_columns) != list(partition_by):
        raise SchemaMismatchError(
            f"Delta table {uri} is partitioned by {table.metadata().partition_columns}, "
            f"the write by {list(partition_by)}"
        )
    try:
        if mode == "overwrite" and replace_partitions is not None:
            as_str = [
                {col: partition_value_to_str(val, col) for col, val in p.items()}
                for p in replace_partitions
            ]
            for p in as_str:
                if set(p) != set(partition_by):
                    raise ValueError(
                        f"replace_partitions entry {p} must name every partition column {list(partition_by)}"
                    )
            removes = _remove_actions(table, as_str)
            # A file of this write outside the named partitions would silently grow the table.
            allowed = {tuple(sorted(p.items())) for p in as_str}
            stray = [a.path for a in adds if tuple(sorted(a.partition_values.items())) not in allowed]
            if stray:
                raise ValueError(
                    f"partition overwrite of {uri}: rows fall outside the replaced partitions "
                    f"{as_str} (first file {stray[0]})"
                )
            table.create_write_transaction(
                [*removes, *adds], mode="append", schema=schema,
                partition_by=list(partition_by) or None, commit_properties=props,
            )
        else:
            table.create_write_transaction(
                adds, mode=mode, schema=schema,
                partition_by=list(partition_by) or None, commit_properties=props,
            )
    except CommitFailedError as exc:
        raise ConcurrentWriteError(
            f"commit to {uri} conflicted with a concurrent write ({exc}); the table is unchanged, "
            "rerun the job"
        ) from exc
    table.update_incremental()
    return table.version()

