"""Executor side of a Delta write: Parquet files laid out hive-style, with Delta stats.

Pure pyarrow: no Spark, no delta-rs. Each Spark task feeds its Arrow batches
to one `PartitionedFileWriter`, which keeps one open Parquet file per partition
value (rolled over at `max_rows_per_file`) and returns `DataFile` records that
the driver turns into Delta AddActions.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Partition values become directory names and Delta log paths verbatim, so they
# are restricted to characters that need no escaping in either.
_SAFE_PARTITION_VALUE = re.compile(r"^[A-Za-z0-9._+\-]+$")
# Delta readers compare string stats as prefixes; long strings are left out rather than truncated.
_MAX_STRING_STAT_LEN = 32
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
MAX_ROWS_PER_FILE = 5_000_000  # every writer rolls a file over here, so a skewed partition still splits


@dataclass(frozen=True)
class DataFile:
    """One written Parquet file, relative to the table root (what an AddAction needs)."""

    path: str
    size: int
    partition_values: dict[str, str | None]
    modification_time: int
    stats: str


def partition_value_to_str(value: Any, column: str) -> str | None:
    """Delta's string form of a partition value; refuses characters that would need escaping."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    elif isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if not _SAFE_PARTITION_VALUE.match(text):
        raise ValueError(
            f"partition column {column!r} has value {text!r}; partition values may only "
            "contain letters, digits and . _ + - (they become directory names)"
        )
    return text


def partition_dir(partition_values: dict[str, str | None]) -> str:
    return "".join(
        f"{col}={NULL_PARTITION if val is None else val}/" for col, val in partition_values.items()
    )


def _stat_value(value: Any, upper: bool) -> Any:
    """A JSON-safe min/max that still bounds the data (timestamps rounded outward to ms)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        ms = value.microsecond // 1000
        rounded = value.replace(microsecond=ms * 1000)
        if upper and rounded < value:
            rounded += dt.timedelta(milliseconds=1)
        return rounded.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _has_exact_min_max(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind) or pa.types.is_floating(kind)
        or pa.types.is_string(kind) or pa.types.is_temporal(kind)
    )


class ColumnStats:
    """Delta file stats, accumulated batch by batch so a file's rows need not stay in memory.

    numRecords, nullCount for every column, and min/max where they are exact
    (no NaN/inf floats, strings of at most 32 chars; no lists or booleans).
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.rows = 0
        self.nulls = {f.name: 0 for f in schema}
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}
        self.inexact: set[str] = {f.name for f in schema if not _has_exact_min_max(f.type)}

    def update(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for field, column in zip(table.schema, table.columns, strict=True):
            name = field.name
            self.nulls[name] += column.null_count
            if name in self.inexact or column.null_count == len(column):
                continue
            lo, hi = (v.as_py() for v in pc.min_max(column).values())
            if pa.types.is_floating(field.type) and (
                pc.any(pc.is_nan(column)).as_py() or math.isinf(lo) or math.isinf(hi)
            ):
                self.inexact.add(name)
                continue
            if pa.types.is_string(field.type) and max(len(lo), len(hi)) > _MAX_STRING_STAT_LEN:
                self.inexact.add(name)
                continue
            self.mins[name] = lo if name not in self.mins else min(self.mins[name], lo)
            self.maxs[name] = hi if name not in self.maxs else max(self.maxs[name], hi)

    def to_json(self) -> str:
        exact = [n for n in self.mins if n not in self.inexact]
        return json.dumps({
            "numRecords": self.rows,
            "minValues": {n: _stat_value(self.mins[n], upper=False) for n in exact},
            "maxValues": {n: _stat_value(self.maxs[n], upper=True) for n in exact},
            "nullCount": self.nulls,
        })


def footer_stats(metadata: pq.FileMetaData, data_schema: pa.Schema) -> str:
    """Delta stats of a Parquet file some other writer produced (Spark's own), from its footer.

    numRecords always; nullCount and min/max of top-level primitive columns from the row-group
    statistics. Float min/max are left out (Parquet statistics skip NaN, Delta's would not), as
    are strings over 32 characters and columns whose statistics are missing.
    """
    stats = ColumnStats(data_schema)
    stats.rows = metadata.num_rows
    groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
    index = {groups[0].column(i).path_in_schema: i for i in range(metadata.num_columns)} if groups else {}
    for field in data_schema:
        name = field.name
        exact = name not in stats.inexact and not pa.types.is_floating(field.type)
        if name not in index:  # a list's leaf is `name.list.element`: its null count is of the elements
            stats.nulls.pop(name)
            stats.inexact.add(name)
            continue
        for group in groups:
            column = group.column(index[name])
            st = column.statistics
            if st is None or not st.has_null_count:
                stats.nulls.pop(name)
                exact = False
                break
            stats.nulls[name] += st.null_count
            if not exact or st.null_count == column.num_values:
                continue
            if not st.has_min_max or isinstance(st.min, bytes):
                exact = False
                continue
            lo, hi = st.min, st.max
            if pa.types.is_string(field.type) and max(len(lo), len(hi)) > _MAX_STRING_STAT_LEN:
                exact = False
                continue
            stats.mins[name] = lo if name not in stats.mins else min(stats.mins[name], lo)
            stats.maxs[name] = hi if name not in stats.maxs else max(stats.maxs[name], hi)
        if not exact:
            stats.inexact.add(name)
    return stats.to_json()


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Reorder and cast a batch to the table schema; errors name the column."""
    names = set(batch.schema.names)
    missing = [f.name for f in schema if f.name not in names]
    extra = sorted(names - set(schema.names))
    if missing or extra:
        raise ValueError(f"columns do not match the table schema: missing {missing}, unexpected {extra}")
    arrays = []
    for field in schema:
        column = batch.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(
                    f"column {field.name!r}: cannot store {column.type} as {field.type}: {exc}"
                ) from exc
        if not field.nullable and column.null_count:
            raise ValueError(
                f"column {field.name!r} is NOT NULL in the table schema but {column.null_count} "
                "row(s) of this batch are null"
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


class PartitionedFileWriter:
    """Writes one task's rows into `<table>/<col=val/...>part-<write_id>-<uuid>.snappy.parquet`."""

    def __init__(
        self,
        schema: pa.Schema,
        partition_by: tuple[str, ...],
        write_id: str,
        filesystem: pafs.FileSystem,
        root_path: str,
        max_rows_per_file: int = MAX_ROWS_PER_FILE,
        row_group_rows: int = 1 << 20,
    ) -> None:
        self.schema = schema
        self.partition_by = partition_by
        self.data_schema = pa.schema([f for f in schema if f.name not in partition_by])
        self.write_id = write_id
        self.fs = filesystem
        self.root_path = root_path.rstrip("/")
        self.max_rows_per_file = max_rows_per_file
        # Spark hands over ~10k-row Arrow batches; buffering them into large row groups
        # keeps files fast to write and to scan.
        self.row_group_rows = row_group_rows
        # Dictionary pages pay off for strings and dates (ids, categories, days); unique numbers and
        # timestamps would build a dictionary only to fall back from it (~40% of the write time).
        self.dictionary_columns = [
            f.name for f in self.data_schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_date(f.type)
            or pa.types.is_boolean(f.type) or (pa.types.is_list(f.type) and pa.types.is_string(f.type.value_type))
        ]
        self._open: dict[tuple, tuple[pq.ParquetWriter, str, ColumnStats, Any]] = {}
        self._pending: dict[tuple, list[pa.Table]] = {}
        self._pending_rows: dict[tuple, int] = {}
        self._done: list[DataFile] = []

    def write(self, batch: pa.RecordBatch) -> None:
        table = conform_batch(batch, self.schema)
        if table.num_rows == 0:
            return
        if not self.partition_by:
            self._append((), table)
            return
        keys = table.select(list(self.partition_by)).group_by(list(self.partition_by)).aggregate([])
        for key_row in keys.to_pylist():
            mask = None
            for col in self.partition_by:
                value = key_row[col]
                cond = pc.is_null(table[col]) if value is None else pc.equal(table[col], value)
                mask = cond if mask is None else pc.and_(mask, cond)
            key = tuple(partition_value_to_str(key_row[c], c) for c in self.partition_by)
            self._append(key, table.filter(mask))

    def _append(self, key: tuple, table: pa.Table) -> None:
        self._pending.setdefault(key, []).append(table.select(self.data_schema.names))
        self._pending_rows[key] = self._pending_rows.get(key, 0) + table.num_rows
        if self._pending_rows[key] >= self.row_group_rows:
            self._flush(key)
        elif sum(self._pending_rows.values()) >= self.row_group_rows:
            for pending in list(self._pending):  # many small partitions: bound the task's memory
                self._flush(pending)

    def _flush(self, key: tuple) -> None:
        parts = self._pending.pop(key, [])
        self._pending_rows.pop(key, None)
        if not parts:
            return
        data = pa.concat_tables(parts)  # chunked: the Parquet writer needs no contiguous copy
        state = self._open.get(key)
        if state is None:
            rel = partition_dir(dict(zip(self.partition_by, key, strict=True)))
            rel += f"part-{self.write_id}-{uuid.uuid4().hex}.snappy.parquet"
            self.fs.create_dir(f"{self.root_path}/{rel}".rsplit("/", 1)[0], recursive=True)
            sink = self.fs.open_output_stream(f"{self.root_path}/{rel}")
            writer = pq.ParquetWriter(sink, self.data_schema, compression="snappy",
                                      use_dictionary=self.dictionary_columns)
            state = (writer, rel, ColumnStats(self.data_schema), sink)
            self._open[key] = state
        writer, rel, stats, _ = state
        writer.write_table(data, row_group_size=self.row_group_rows)
        stats.update(data)
        if stats.rows >= self.max_rows_per_file:
            self._close(key)

    def _close(self, key: tuple) -> None:
        writer, rel, stats, sink = self._open.pop(key)
        writer.close()
        size = sink.tell()  # the bytes written: an object store may not list a file it just took
        sink.close()
        info = self.fs.get_file_info(f"{self.root_path}/{rel}")
        mtime = info.mtime_ns // 1_000_000 if info.mtime_ns else int(time.time() * 1000)
        self._done.append(
            DataFile(
                path=rel,
                size=size,
                partition_values=dict(zip(self.partition_by, key, strict=True)),
                modification_time=mtime,
                stats=stats.to_json(),
            )
        )

    def close(self) -> list[DataFile]:
        for key in list(self._pending):
            self._flush(key)
        for key in list(self._open):
            self._close(key)
        return self._done


@dataclass(frozen=True)
class SnapshotFile:
    """One data file of a snapshot: where it is and the partition values its path encodes (as strings)."""

    path: str
    partition: dict[str, str | None]


def filesystem_for(table_uri: str, storage_options: dict[str, str] | None = None):
    """(pyarrow filesystem, path inside it) for a local path or any URI pyarrow knows."""
    if "://" not in table_uri:
        import os

        table_uri = os.path.abspath(table_uri)
        return pafs.LocalFileSystem(), table_uri
    scheme, rest = table_uri.split("://", 1)
    if scheme in ("s3", "s3a"):
        return s3_filesystem(storage_options), rest
    return pafs.FileSystem.from_uri(table_uri)


def object_store_options(storage_options: dict[str, str] | None = None) -> dict[str, str]:
    """The standard AWS_* environment variables (AWS_VARIABLES), overridden by `storage_options` (keys
    upper-cased, as delta-rs accepts either case): what both delta-rs and pyarrow are given. An empty
    variable counts as unset (an Airflow connection without an endpoint renders AWS_ENDPOINT_URL as "")."""
    import os

    options = {k: v for k, v in os.environ.items() if k in AWS_VARIABLES and v}
    options.update({k.upper(): v for k, v in (storage_options or {}).items()})
    return options


# The environment variables an object-store job hands to its executors (which may run where they are unset).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP")


def s3_filesystem(storage_options: dict[str, str] | None = None) -> pafs.S3FileSystem:
    """pyarrow's S3 client with the endpoint, region and credentials delta-rs would use (pyarrow reads
    credentials from the environment itself, but not AWS_ENDPOINT_URL: an S3-compatible server needs it)."""
    options = object_store_options(storage_options)
    return pafs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"),
        secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        session_token=options.get("AWS_SESSION_TOKEN"),
        region=options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION"),
        endpoint_override=options.get("AWS_ENDPOINT_URL") or options.get("AWS_ENDPOINT"),
    )


ABORT_MARKERS = "_tigertwin_aborted"


def mark_aborted(fs: pafs.FileSystem, root_path: str, write_id: str) -> None:
    """Tell late tasks of this write to remove their own files (readers skip `_` folders)."""
    fs.create_dir(f"{root_path}/{ABORT_MARKERS}", recursive=True)
    with fs.open_output_stream(f"{root_path}/{ABORT_MARKERS}/{write_id}") as out:
        out.write(b"aborted")


def is_aborted(fs: pafs.FileSystem, root_path: str, write_id: str) -> bool:
    return fs.get_file_info(f"{root_path}/{ABORT_MARKERS}/{write_id}").type != pafs.FileType.NotFound


def delete_files_of_write(
    fs: pafs.FileSystem, root_path: str, write_id: str
) -> list[str]:
    """Remove every data file a write created (found by its write id); returns what was removed."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root_path, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return []
    marker = f"part-{write_id}-"
    removed = []
    for info in infos:
        if info.type == pafs.FileType.File and info.base_name.startswith(marker):
            fs.delete_file(info.path)
            removed.append(info.path)
    return removed
