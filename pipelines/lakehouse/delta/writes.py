"""Writes: one atomic Delta commit per write, against the version the data was read at.

Local tables: Spark's own Parquet writer (native.py); object stores: the
`tigertwin_delta` Python data source (source.py); without Spark: pyarrow in
this process. All three commit through commit.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import pyarrow as pa

from pipelines.errors import DeltaWriteError, EmptyOverwriteError, TigertwinError
from pipelines.lakehouse.delta.commit import (
    ConcurrentWriteError,
    SchemaMismatchError,
    WriteGuard,
    WriteMode,
    check_schema,
    commit_files,
)
from pipelines.lakehouse.delta.files import (
    DataFile,
    PartitionedFileWriter,
    delete_files_of_write,
    filesystem_for,
)
from pipelines.lakehouse.delta.location import is_uri, normalize_location
from pipelines.lakehouse.delta.reads import has_delta_connector, read_delta_arrow, table_version

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


AT_WRITE_START: Final = "at_write_start"
ReadVersion = int | None | Literal["at_write_start"]


def _arrow_schema_of(df: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone="UTC")


def _resolve_read_version(uri: str, read_version: ReadVersion, storage_options: dict[str, str] | None) -> int | None:
    return table_version(uri, storage_options) if read_version == AT_WRITE_START else read_version


def write_delta(
    spark: SparkSession,
    df: DataFrame,
    uri: str,
    *,
    mode: WriteMode,
    schema: pa.Schema | None = None,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[dict[str, object]] | None = None,
    read_version: ReadVersion = AT_WRITE_START,
    allow_empty: bool = False,
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
    guard: WriteGuard | None = None,
) -> int:
    """Write `df` to the Delta table at `uri` in one atomic commit; returns the new version.

    `schema` is the table's Arrow schema (the DataFrame's when None); columns are
    matched by name and a mismatch raises SchemaMismatchError naming the column.
    `replace_partitions` (with mode="overwrite") replaces only those partitions.
    `read_version` is the table version `df` was derived from (a read-modify-write
    passes the version it read); an overwrite conflicting with commits made since
    raises ConcurrentWriteError (see commit.py); `guard` adds the partitions the input
    read and a transaction id to that check. An overwrite of a non-empty table
    with no rows raises EmptyOverwriteError unless `allow_empty`.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
    if replace_partitions is not None and mode != "overwrite":
        raise ValueError("replace_partitions needs mode='overwrite'")
    uri = normalize_location(uri)
    read_version = _resolve_read_version(uri, read_version, storage_options)
    target = schema if schema is not None else _arrow_schema_of(df)
    check_schema(target, _arrow_schema_of(df), f"writing {uri}")
    df = df.select(*target.names)
    if partition_by:  # one task per partition value -> one file per partition, not one per task
        df = df.repartition(*partition_by)

    if has_delta_connector(spark):
        return _write_with_connector(spark, df, uri, mode, partition_by, replace_partitions)
    if not is_uri(uri):  # a local or mounted filesystem: Spark's own Parquet writer, ~2x faster
        return _write_native(df, PendingCommit(uri, target, mode, partition_by, replace_partitions, read_version,
                                               allow_empty, storage_options, custom_metadata, guard))

    from pipelines.lakehouse.delta.files import object_store_options
    from pipelines.lakehouse.delta.source import FORMAT_NAME, DeltaDataSource, encode_schema

    spark.dataSource.register(DeltaDataSource)
    write_id = uuid.uuid4().hex[:16]
    writer = (
        df.write.format(FORMAT_NAME)
        .mode(mode)
        .option("path", uri)
        .option("schema", encode_schema(target))
        .option("write_id", write_id)
        .option("partition_by", ",".join(partition_by))
        .option("read_version", json.dumps(read_version))
        .option("allow_empty", str(allow_empty).lower())
        # the driver's credentials and endpoint: executors elsewhere may not have its environment
        .option("storage_options", json.dumps(object_store_options(storage_options)))
        .option("custom_metadata", json.dumps(custom_metadata or {}))
        .option("guard", guard.to_json() if guard is not None else "")
    )
    if replace_partitions is not None:
        writer = writer.option("replace_partitions", json.dumps(list(replace_partitions), default=str))
    log.info("writing %s (mode=%s, read at version %s, write id %s)", uri, mode, read_version, write_id)
    try:
        writer.save()
    except Exception as exc:
        cause = _python_error(exc)
        if isinstance(cause, ConcurrentWriteError | EmptyOverwriteError | SchemaMismatchError):
            raise cause from exc
        raise DeltaWriteError(f"writing {uri} failed, table unchanged: {_python_cause(exc)}") from exc
    version = table_version(uri, storage_options)
    assert version is not None, f"commit to {uri} left no table"
    return version


@dataclass(frozen=True)
class PendingCommit:
    """Everything the driver's commit needs besides the files: one object instead of nine arguments."""

    uri: str
    schema: pa.Schema
    mode: WriteMode
    partition_by: Sequence[str]
    replace_partitions: Sequence[dict[str, object]] | None
    read_version: int | None
    allow_empty: bool
    storage_options: dict[str, str] | None
    custom_metadata: dict[str, str] | None
    guard: WriteGuard | None = None

    def of(self, files: list[DataFile]) -> int:
        return commit_files(
            self.uri, self.schema, files, mode=self.mode, read_version=self.read_version,
            partition_by=self.partition_by, replace_partitions=self.replace_partitions,
            storage_options=self.storage_options, custom_metadata=self.custom_metadata,
            allow_empty=self.allow_empty, guard=self.guard,
        )


def _write_native(df: DataFrame, commit: PendingCommit) -> int:
    from pipelines.lakehouse.delta.native import NOT_NULL_MARKER, write_files

    def spark_files(root: str, write_id: str) -> list[DataFile]:
        return write_files(df, root, commit.schema, commit.partition_by, write_id)

    try:
        return _write_and_commit(spark_files, commit)
    except TigertwinError:
        raise
    except Exception as exc:  # a Spark task failed: name the column when it was a NOT NULL one
        marker = re.search(rf"column '[^']+' {NOT_NULL_MARKER}[^\n\]]*", str(exc))
        cause = marker.group() if marker else _python_cause(exc)
        raise DeltaWriteError(f"writing {commit.uri} failed, table unchanged: {cause}") from exc


def _write_and_commit(write_files: Callable[[str, str], list[DataFile]], commit: PendingCommit) -> int:
    """`write_files(root, write_id)` writes this process's data files; then one commit. On any
    failure every file carrying the write id is removed, so the table directory is as it was."""
    write_id = uuid.uuid4().hex[:16]
    log.info("writing %s (mode=%s, read at version %s, write id %s)", commit.uri, commit.mode,
             commit.read_version, write_id)
    fs, root = filesystem_for(commit.uri, commit.storage_options)
    try:
        return commit.of(write_files(root, write_id))
    except BaseException:
        removed = delete_files_of_write(fs, root, write_id)
        log.warning("write %s to %s failed; removed %d file(s)", write_id, commit.uri, len(removed))
        raise


def write_delta_arrow(
    data: pa.Table,
    uri: str,
    *,
    mode: WriteMode,
    schema: pa.Schema,
    partition_by: Sequence[str] = (),
    replace_partitions: Sequence[dict[str, object]] | None = None,
    read_version: ReadVersion = AT_WRITE_START,
    allow_empty: bool = False,
    storage_options: dict[str, str] | None = None,
    custom_metadata: dict[str, str] | None = None,
    guard: WriteGuard | None = None,
) -> int:
    """The same write without Spark (GPU workers, tools): this process writes the files and commits."""
    uri = normalize_location(uri)
    read_version = _resolve_read_version(uri, read_version, storage_options)

    def arrow_files(root: str, write_id: str) -> list[DataFile]:
        fs, _ = filesystem_for(uri, storage_options)
        writer = PartitionedFileWriter(schema, tuple(partition_by), write_id, fs, root)
        for batch in data.to_batches():
            writer.write(batch)
        return writer.close()

    return _write_and_commit(arrow_files, PendingCommit(uri, schema, mode, partition_by, replace_partitions,
                                                        read_version, allow_empty, storage_options, custom_metadata,
                                                        guard))


def upsert_arrow(
    rows: pa.Table, uri: str, *, key: Sequence[str], schema: pa.Schema,
    storage_options: dict[str, str] | None = None, custom_metadata: dict[str, str] | None = None,
) -> int:
    """Insert or replace `rows` by `key` (copy-on-write of the whole table, one commit, no Spark).

    A concurrent writer's commit sends it back to a fresh read (retry_on_conflict), so two
    upserts never lose each other's rows.
    """

    def attempt() -> int:
        read_version = table_version(uri, storage_options)
        merged = rows
        if read_version is not None:
            current, _ = read_delta_arrow(uri, version=read_version, storage_options=storage_options)
            kept = current.join(rows.select(list(key)), keys=list(key), join_type="left anti")
            merged = pa.concat_tables([kept.select(schema.names).cast(schema), rows.select(schema.names).cast(schema)])
        return write_delta_arrow(merged, uri, mode="overwrite", schema=schema, read_version=read_version,
                                 storage_options=storage_options, custom_metadata=custom_metadata)

    return retry_on_conflict(attempt, what=f"upsert into {uri}", attempts=20)


T = TypeVar("T")


def retry_on_conflict(attempt: Callable[[], T], *, what: str, attempts: int = 5) -> T:
    """Run a read-modify-write, re-reading after a ConcurrentWriteError; bounded, each retry logged."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except ConcurrentWriteError as exc:
            if number == attempts:
                raise
            log.warning("%s: %s; retrying from a fresh read (%d/%d)", what, exc, number, attempts - 1)
            time.sleep(0.2 * number)
    raise AssertionError("unreachable")


def _python_error(exc: BaseException) -> Exception | None:
    """The project error raised on the driver inside Spark's commit (Spark wraps it), if any."""
    from pipelines import errors

    seen = exc
    while seen is not None:
        if isinstance(seen, errors.TigertwinError):
            return seen
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    name_and_message = _python_cause(exc)
    name, _, message = name_and_message.partition(": ")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.TigertwinError) and message:
        return cls(message)
    return None


def _python_cause(exc: Exception) -> str:
    """The Python error inside Spark's wrapping (the message people need), else the first line."""
    text = str(exc)
    causes = re.findall(r"^(?:\w+\.)*(\w+(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
    python_side = [c for c in causes if not c[0].startswith(("Py4J", "Spark", "Python"))]
    if python_side:
        name, message = python_side[-1]
        return f"{name}: {message}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


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
