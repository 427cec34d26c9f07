"""`tigertwin_delta`: a Spark 4 Python data source that writes Delta tables through delta-rs, and reads a
snapshot's files where Spark's own Parquet reader cannot reach them.

Writes: tasks write Parquet files (files.py) and return them as commit
messages; the driver commits them once (commit.py); a failed job deletes what
its tasks wrote, found by the write id the driver chose, so the table stays as
it was.

Reads (object stores without the hadoop-aws connector, whose JARs come from
Maven): the driver takes the snapshot's file list from the Delta log
(reads.py) and hands it over as options; each Spark partition is a group of
files that an executor reads itself with pyarrow's filesystem for the URI
(S3, GCS, Azure), so no executor depends on the driver's disk or memory.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql.datasource import (
    DataSource,
    DataSourceArrowWriter,
    DataSourceReader,
    InputPartition,
    WriterCommitMessage,
)
from pyspark.sql.types import StructType

from pipelines.lakehouse.delta.files import (
    DataFile,
    PartitionedFileWriter,
    SnapshotFile,
    conform_batch,
    delete_files_of_write,
    filesystem_for,
    is_aborted,
    mark_aborted,
)

log = logging.getLogger(__name__)


FORMAT_NAME = "tigertwin_delta"


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


@dataclass
class FilesWritten(WriterCommitMessage):
    files: list[DataFile]


@dataclass(frozen=True)
class WriteOptions:
    """The writer's options, parsed once from Spark's string options."""

    path: str
    schema: pa.Schema
    write_id: str
    partition_by: tuple[str, ...]
    replace_partitions: list[dict[str, object]] | None
    storage_options: dict[str, str]
    max_rows_per_file: int
    custom_metadata: dict[str, str]
    read_version: int | None  # the version the data was read at; None: the table did not exist
    allow_empty: bool
    guard: str  # WriteGuard as JSON; empty: none

    @classmethod
    def parse(cls, options) -> WriteOptions:
        required = ("path", "schema", "write_id", "read_version")
        missing = [k for k in required if not options.get(k)]
        if missing:
            raise ValueError(f"{FORMAT_NAME} writer needs option(s) {missing}; use pipelines.lakehouse.delta.write_delta")
        replace = options.get("replace_partitions")
        return cls(
            path=options["path"],
            schema=decode_schema(options["schema"]),
            write_id=options["write_id"],
            partition_by=tuple(c for c in options.get("partition_by", "").split(",") if c),
            replace_partitions=json.loads(replace) if replace else None,
            storage_options=json.loads(options.get("storage_options") or "{}"),
            max_rows_per_file=int(options.get("max_rows_per_file") or 5_000_000),
            custom_metadata=json.loads(options.get("custom_metadata") or "{}"),
            read_version=json.loads(options["read_version"]),
            allow_empty=options.get("allow_empty", "false") == "true",
            guard=options.get("guard") or "",
        )


@dataclass(frozen=True)
class ReadOptions:
    """The reader's options: the snapshot's files, chosen by the driver from the Delta log."""

    schema: pa.Schema
    files: list[SnapshotFile]
    storage_options: dict[str, str]
    files_per_partition: int

    @classmethod
    def parse(cls, options) -> ReadOptions:
        if not options.get("schema") or options.get("files") is None:
            raise ValueError(f"{FORMAT_NAME} reader needs options schema and files; use "
                             "pipelines.lakehouse.delta.read_delta")
        return cls(decode_schema(options["schema"]),
                   [SnapshotFile(f["path"], f["partition"]) for f in json.loads(options["files"])],
                   json.loads(options.get("storage_options") or "{}"),
                   max(1, int(options.get("files_per_partition") or 1)))


def read_options(schema: pa.Schema, files: list[SnapshotFile], storage_options: dict[str, str] | None,
                 files_per_partition: int = 1) -> dict[str, str]:
    """Spark string options for `spark.read.format(FORMAT_NAME)`."""
    return {"schema": encode_schema(schema),
            "files": json.dumps([{"path": f.path, "partition": f.partition} for f in files]),
            "storage_options": json.dumps(storage_options or {}), "files_per_partition": str(files_per_partition)}


class DeltaDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def schema(self) -> StructType:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(decode_schema(self.options["schema"]))

    def reader(self, schema: StructType) -> DeltaSnapshotReader:
        return DeltaSnapshotReader(ReadOptions.parse(self.options))

    def writer(self, schema: StructType, overwrite: bool) -> DeltaArrowWriter:
        return DeltaArrowWriter(WriteOptions.parse(self.options), overwrite)


@dataclass
class FileGroup(InputPartition):
    files: list[SnapshotFile]


class DeltaSnapshotReader(DataSourceReader):
    def __init__(self, options: ReadOptions) -> None:
        self.opts = options

    def partitions(self) -> list[InputPartition]:
        n = self.opts.files_per_partition
        files = self.opts.files
        return [FileGroup(files[i:i + n]) for i in range(0, len(files), n)] or [FileGroup([])]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        assert isinstance(partition, FileGroup)
        schema = self.opts.schema
        for file in partition.files:
            fs, path = filesystem_for(file.path, self.opts.storage_options)
            data_columns = [name for name in schema.names if name not in file.partition]
            table = pq.read_table(path, filesystem=fs, columns=data_columns)
            for name, value in file.partition.items():  # a partition column lives in the path, not the file
                field = schema.field(name)
                table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()).cast(field.type))
            for batch in table.to_batches():
                yield from conform_batch(batch, schema).to_batches()


class DeltaArrowWriter(DataSourceArrowWriter):
    def __init__(self, options: WriteOptions, overwrite: bool) -> None:
        self.opts = options
        self.overwrite = overwrite

    def write(self, iterator: Iterator[pa.RecordBatch]) -> FilesWritten:
        fs, root = filesystem_for(self.opts.path, self.opts.storage_options)
        writer = PartitionedFileWriter(
            self.opts.schema,
            self.opts.partition_by,
            self.opts.write_id,
            fs,
            root,
            self.opts.max_rows_per_file,
        )
        try:
            for batch in iterator:
                writer.write(batch)
            files = writer.close()
            # A sibling task may have failed and abort() swept already: our files are then strays.
            # abort() marks before it sweeps and we check after closing, so one of us removes them.
            if is_aborted(fs, root, self.opts.write_id):
                raise RuntimeError(f"write {self.opts.write_id} was aborted")
            return FilesWritten(files)
        except BaseException:
            # This task's own files; abort() also sweeps by write id in case the task died hard.
            delete_files_of_write(fs, root, self.opts.write_id)
            raise

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        from pipelines.lakehouse.delta.commit import WriteGuard, commit_files

        files = [f for m in messages if isinstance(m, FilesWritten) for f in m.files]
        try:
            version = commit_files(
                self.opts.path,
                self.opts.schema,
                files,
                mode="overwrite" if self.overwrite else "append",
                read_version=self.opts.read_version,
                allow_empty=self.opts.allow_empty,
                partition_by=self.opts.partition_by,
                replace_partitions=self.opts.replace_partitions,
                storage_options=self.opts.storage_options or None,
                custom_metadata=self.opts.custom_metadata or None,
                guard=WriteGuard.from_json(self.opts.guard),
            )
        except BaseException:
            self._cleanup()
            raise
        log.info("committed %d file(s) to %s as version %d", len(files), self.opts.path, version)

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        fs, root = filesystem_for(self.opts.path, self.opts.storage_options)
        mark_aborted(fs, root, self.opts.write_id)
        removed = delete_files_of_write(fs, root, self.opts.write_id)
        log.warning("write %s to %s aborted; removed %d file(s)", self.opts.write_id, self.opts.path, len(removed))
