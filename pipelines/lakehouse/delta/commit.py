"""Driver side of a Delta write: one atomic commit of the files the tasks wrote (delta-rs).

Optimistic concurrency, as Delta does it: a write knows the table version its
input was read at (`read_version`). At commit time every commit made since is
checked against what this write replaces:

- append: blind; it commutes with everything, so it never conflicts;
- overwrite of the whole table: any data change since the read conflicts;
- overwrite of partitions: a data change inside those partitions conflicts;
- a schema/partitioning change since the read conflicts with any overwrite;
- with a `WriteGuard`: a data change inside partitions the write's input read
  (a partial spec such as {"event_date": d} matches every file of that day), and
  any commit since carrying a transaction of the same app id (Delta's `txn`
  action), so two runs of one logical write never both land unseen.

A conflict raises ConcurrentWriteError and leaves the table as the other
writer left it. With no conflict the commit is attempted at exactly the next
version (delta-rs's own retries off), so a writer that slips in between the
check and the commit sends us round the loop again instead of being merged
unseen.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import (
    AddAction,
    CommitProperties,
    RemoveAction,
    Transaction,
    create_table_with_add_actions,
)

from pipelines.errors import (
    ConcurrentWriteError,
    EmptyOverwriteError,
    SchemaMismatchError,
    StorageAccessError,
)
from pipelines.lakehouse.delta.files import DataFile, filesystem_for, partition_value_to_str
from pipelines.lakehouse.delta.location import normalize_location

log = logging.getLogger(__name__)

WriteMode = Literal["append", "overwrite"]
# Attempts at the next version while other writers keep landing first (each re-checks conflicts).
MAX_COMMIT_ATTEMPTS = 100

__all__ = [
    "ConcurrentWriteError",
    "EmptyOverwriteError",
    "SchemaMismatchError",
    "WriteGuard",
    "WriteMode",
    "check_schema",
    "commit_files",
    "commit_rewrite",
    "open_table",
]


def open_table(uri: str, storage_options: dict[str, str] | None = None, version: int | None = None):
    """The DeltaTable at `uri`, or None when no table exists there yet; StorageAccessError (one line) when
    its storage refuses or cannot be reached."""
    try:
        return DeltaTable(normalize_location(uri), version=version, storage_options=storage_options)
    except TableNotFoundError:
        return None
    except OSError as exc:  # delta-rs's object-store errors: a chain of indented, coloured lines
        detail = " ".join(re.sub(r"\x1b\[[0-9;]*m|↳", " ", str(exc)).split())
        raise StorageAccessError(f"cannot read the Delta log of {uri}: {detail[:400]}; check the storage's "
                                 "credentials and endpoint (AWS_* for s3://)") from None


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


@dataclass(frozen=True)
class WriteGuard:
    """What a write depends on besides the partitions it replaces (optimistic concurrency's read set).

    `read_partitions`: partial partition specs ({"event_date": "2024-03-01"}) the write's input was
    derived from; a data change in a matching file since the read version conflicts, even for an append.
    `app_id`: a Delta transaction identifier; the commit records (app_id, last version + 1), and any
    commit since the read that recorded the same app id conflicts.
    """

    read_partitions: tuple[tuple[tuple[str, str], ...], ...] = ()
    app_id: str | None = None

    @classmethod
    def of(cls, read_partitions: Sequence[Mapping[str, object]] = (), app_id: str | None = None) -> WriteGuard:
        specs = {tuple(sorted((c, str(partition_value_to_str(v, c))) for c, v in p.items())) for p in read_partitions}
        return cls(tuple(sorted(specs)), app_id)

    def reads(self, partition_values: Mapping[str, str | None]) -> bool:
        return any(all(partition_values.get(c) == v for c, v in spec) for spec in self.read_partitions)

    def to_json(self) -> str:
        return json.dumps({"read_partitions": [dict(p) for p in self.read_partitions], "app_id": self.app_id})

    @classmethod
    def from_json(cls, text: str | None) -> WriteGuard | None:
        if not text:
            return None
        data = json.loads(text)
        return cls.of(data["read_partitions"], data["app_id"])


@dataclass(frozen=True)
class WriteScope:
    """What a write replaces: nothing (append), the whole table, or some partitions."""

    mode: WriteMode
    partitions: frozenset[tuple[tuple[str, str | None], ...]] | None = None  # None: the whole table

    def touches(self, partition_values: Mapping[str, str | None]) -> bool:
        if self.mode == "append":
            return False
        return self.partitions is None or tuple(sorted(partition_values.items())) in self.partitions


def _commit_actions(uri: str, storage_options: dict[str, str] | None, version: int) -> list[dict[str, Any]]:
    fs, root = filesystem_for(normalize_location(uri), storage_options)
    with fs.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as handle:
        return [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def find_conflict(
    uri: str,
    storage_options: dict[str, str] | None,
    scope: WriteScope,
    read_version: int | None,
    latest_version: int,
    guard: WriteGuard | None = None,
) -> str | None:
    """Why the commits after `read_version` (None: before the table existed) invalidate this write."""
    if scope.mode == "append" and guard is None:
        return None
    first = 0 if read_version is None else read_version + 1
    for version in range(first, latest_version + 1):
        for action in _commit_actions(uri, storage_options, version):
            if "metaData" in action and version > 0 and scope.mode == "overwrite":
                return f"version {version} changed the table's schema or partitioning"
            txn = action.get("txn")
            if txn and guard is not None and guard.app_id is not None and txn.get("appId") == guard.app_id:
                return f"version {version} was committed by another run of {guard.app_id}"
            change = action.get("add") or action.get("remove")
            if not change or not change.get("dataChange", True):
                continue
            values = change.get("partitionValues") or {}
            kind = "added" if "add" in action else "removed"
            if scope.touches(values):
                return f"version {version} {kind} {change['path']}, which this write replaces"
            if guard is not None and guard.reads(values):
                return f"version {version} {kind} {change['path']}, in a partition this write read"
    return None


def _remove_actions(table: DeltaTable, scope: WriteScope) -> list[RemoveAction]:
    """RemoveActions for every live file the scope replaces."""
    now_ms = int(time.time() * 1000)
    actions = []
    for add in pa.table(table.get_add_actions(flatten=False)).to_pylist():
        values = add.get("partition") or {}
        as_str = {k: partition_value_to_str(v, k) for k, v in values.items()}
        if scope.touches(as_str):
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


def _scope_of(
    mode: WriteMode, partition_by: Sequence[str], replace_partitions: Sequence[dict[str, object]] | None
) -> WriteScope:
    if mode == "append":
        return WriteScope("append")
    if replace_partitions is None:
        return WriteScope("overwrite")
    as_str = [{col: partition_value_to_str(val, col) for col, val in p.items()} for p in replace_partitions]
    for p in as_str:
        if set(p) != set(partition_by):
            raise ValueError(f"replace_partitions entry {p} must name every partition column {list(partition_by)}")
    return WriteScope("overwrite", frozenset(tuple(sorted(p.items())) for p in as_str))


def _rows(files: Sequence[DataFile]) -> int:
    return sum(int(json.loads(f.stats).get("numRecords", 0)) for f in files)


def commit_files(
    uri: str,
    schema: pa.Schema,
    files: Iterable[DataFile],
    *,
    mode: WriteMode,
    read_version: int | None,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[dict[str, object]] | None = None,
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
    allow_empty: bool = False,
    guard: WriteGuard | None = None,
) -> int:
    """Commit the written files as one Delta transaction and return the new table version.

    mode="append" adds them; mode="overwrite" replaces the whole table, or only
    `replace_partitions` (a list of {column: value}) when given, in the same commit.
    `read_version` is the version the written data was derived from (None: the table
    did not exist); see the module docstring for what conflicts (`guard` adds a read set
    and a transaction id). A whole-table overwrite with no rows over a non-empty table is
    refused unless `allow_empty`.
    """
    files = list(files)
    uri = normalize_location(uri)
    scope = _scope_of(mode, partition_by, replace_partitions)
    adds = _add_actions(uri, files, scope)
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        table = open_table(uri, storage_options)
        txns = _transactions(table, guard)
        if table is None:
            if _create(uri, schema, adds, partition_by, storage_options, custom_metadata, txns):
                return 0
            continue  # another writer created it first: check against what it wrote
        latest = table.version()
        conflict = find_conflict(uri, storage_options, scope, read_version, latest, guard)
        if conflict:
            raise ConcurrentWriteError(
                f"commit to {uri} conflicts with a concurrent write ({conflict}; this write read version "
                f"{read_version}); the table is as the other writer left it, rerun the job"
            )
        _check_table_matches(table, schema, partition_by, uri)
        removes = _remove_actions(table, scope) if mode == "overwrite" else []
        if scope.partitions is None and removes and not allow_empty and _rows(files) == 0:
            raise EmptyOverwriteError(
                f"refusing to replace {uri} (version {latest}, {len(removes)} file(s)) with an empty table; "
                "the input produced no rows"
            )
        if _commit_next(table, [*removes, *adds], schema, partition_by, custom_metadata, txns):
            return latest + 1
        # Someone committed version latest + 1 first: back off, then check their commit too.
        log.info("commit to %s lost the race for version %d (attempt %d); re-checking", uri, latest + 1, attempt)
        time.sleep(random.uniform(0.01, 0.05) * min(attempt, 10))
    raise ConcurrentWriteError(f"commit to {uri} lost the race {MAX_COMMIT_ATTEMPTS} times; rerun the job")


def _add_actions(uri: str, files: Sequence[DataFile], scope: WriteScope, data_change: bool = True) -> list[AddAction]:
    adds = [
        AddAction(path=f.path, size=f.size, partition_values=f.partition_values,
                  modification_time=f.modification_time, data_change=data_change, stats=f.stats)
        for f in files
    ]
    stray = [a.path for a in adds if scope.partitions is not None and not scope.touches(a.partition_values)]
    if stray:  # a file of this write outside the named partitions would silently grow the table
        raise ValueError(f"partition overwrite of {uri}: rows fall outside the replaced partitions (first file {stray[0]})")
    return adds


def commit_rewrite(
    uri: str,
    schema: pa.Schema,
    replaced: Sequence[str],
    files: Sequence[DataFile],
    *,
    partition_by: Sequence[str] = (),
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
) -> int:
    """Swap the live files `replaced` (table-relative paths) for `files` holding the same rows, as one commit
    with dataChange=false (compaction: readers and other writers see no data change).

    It conflicts only when a file it replaces is no longer live (a concurrent overwrite or compaction
    removed it): committing then would bring those rows back. Appends since are kept as they are.
    """
    uri = normalize_location(uri)
    adds = _add_actions(uri, files, WriteScope("append"), data_change=False)
    wanted = set(replaced)
    for attempt in range(1, MAX_COMMIT_ATTEMPTS + 1):
        table = open_table(uri, storage_options)
        if table is None:
            raise ConcurrentWriteError(f"{uri} is gone; nothing to compact")
        latest = table.version()
        live = {add["path"]: add for add in pa.table(table.get_add_actions(flatten=False)).to_pylist()}
        gone = sorted(wanted - set(live))
        if gone:
            raise ConcurrentWriteError(f"compaction of {uri}: {gone[0]} (and {len(gone) - 1} more) was removed by a "
                                       f"concurrent write at or before version {latest}; rerun it")
        _check_table_matches(table, schema, partition_by, uri)
        now_ms = int(time.time() * 1000)
        removes = [
            RemoveAction(path=path, data_change=False, deletion_timestamp=now_ms, size=live[path]["size_bytes"],
                         partition_values={k: partition_value_to_str(v, k)
                                           for k, v in (live[path].get("partition") or {}).items()})
            for path in replaced
        ]
        if _commit_next(table, [*removes, *adds], schema, partition_by, custom_metadata):
            return latest + 1
        log.info("compaction commit to %s lost the race (attempt %d); re-checking", uri, attempt)
        time.sleep(random.uniform(0.01, 0.05) * min(attempt, 10))
    raise ConcurrentWriteError(f"compaction commit to {uri} lost the race {MAX_COMMIT_ATTEMPTS} times; rerun it")


def _transactions(table: DeltaTable | None, guard: WriteGuard | None) -> list[Transaction] | None:
    """The txn action this commit records: the guard's app id at its last committed version + 1."""
    if guard is None or guard.app_id is None:
        return None
    last = table.transaction_version(guard.app_id) if table is not None else None
    return [Transaction(guard.app_id, 0 if last is None else last + 1, int(time.time() * 1000))]


def _commit_next(table: DeltaTable, actions: list, schema: pa.Schema, partition_by: Sequence[str],
                 custom_metadata: dict[str, str] | None, txns: list[Transaction] | None = None) -> bool:
    """Commit `actions` as exactly the table's next version (delta-rs's own retries off, so a writer that got
    there first is never merged unseen); False when another commit took that version."""
    props = CommitProperties(custom_metadata=custom_metadata, max_commit_retries=0, app_transactions=txns)
    try:
        table.create_write_transaction(actions, mode="append", schema=schema,
                                       partition_by=list(partition_by) or None, commit_properties=props)
    except CommitFailedError:
        return False
    return True


def _check_table_matches(table: DeltaTable, schema: pa.Schema, partition_by: Sequence[str], uri: str) -> None:
    check_schema(schema, pa.schema(table.schema().to_arrow()), f"Delta table {uri}")
    if list(table.metadata().partition_columns) != list(partition_by):
        raise SchemaMismatchError(
            f"Delta table {uri} is partitioned by {table.metadata().partition_columns}, "
            f"the write by {list(partition_by)}"
        )


def _create(
    uri: str,
    schema: pa.Schema,
    adds: list[AddAction],
    partition_by: Sequence[str],
    storage_options: dict[str, str] | None,
    custom_metadata: dict[str, str] | None,
    txns: list[Transaction] | None = None,
) -> bool:
    """Create the table with these files as version 0; False when another writer created it first."""
    log.info("creating Delta table %s with %d file(s)", uri, len(adds))
    try:
        create_table_with_add_actions(
            uri, schema=Schema.from_arrow(schema), add_actions=adds, mode="error",
            partition_by=list(partition_by) or None, storage_options=storage_options,
            commit_properties=CommitProperties(custom_metadata=custom_metadata, app_transactions=txns),
        )
    except (DeltaError, CommitFailedError) as exc:
        if open_table(uri, storage_options) is None:
            raise
        log.info("table %s was created concurrently (%s); committing against it", uri, exc)
        return False
    return True
