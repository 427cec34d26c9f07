"""Compaction (Delta's OPTIMIZE, without Spark): rewrite each partition's many small files as few large ones.

Nightly appends add one file per partition they touch (ops.metrics gains one
per job run, silver.events one per day an ingest sees), so scans open ever
more files. `compact_table` packs a partition's live files into bins of up
to `target_file_bytes` and rewrites every bin of two or more files as one
file, in one commit with dataChange=false (commit.py's `commit_rewrite`): the
rows, and so every reader's answer, are unchanged; the old files stay for
time travel until vacuum removes them. A concurrent overwrite that removed a
file being compacted makes the compaction fail (table untouched); appends
meanwhile are kept.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.lakehouse.delta.commit import commit_rewrite, open_table
from pipelines.lakehouse.delta.files import (
    DataFile,
    PartitionedFileWriter,
    delete_files_of_write,
    filesystem_for,
    partition_dir,
    partition_value_to_str,
)
from pipelines.lakehouse.delta.location import data_file_path, normalize_location

log = logging.getLogger(__name__)

TARGET_FILE_BYTES = 128 << 20  # Parquet files of ~128 MB: few enough to list, big enough to split


@dataclass(frozen=True)
class LiveFile:
    path: str  # as the Delta log names it
    size: int
    partition_values: dict[str, str | None]


@dataclass(frozen=True)
class CompactionResult:
    uri: str
    version: int | None  # the compaction's commit; None when there was nothing to compact
    files_before: int
    files_after: int
    partitions_compacted: int


def plan_bins(files: Sequence[LiveFile], target_file_bytes: int) -> list[list[LiveFile]]:
    """Per partition, files packed in order into bins of at most `target_file_bytes` (a bigger file is a
    bin of its own); only bins of two or more files are worth rewriting."""
    by_partition: dict[tuple, list[LiveFile]] = defaultdict(list)
    for file in files:
        by_partition[tuple(sorted(file.partition_values.items(), key=lambda kv: kv[0]))].append(file)
    bins = []
    for partition_files in by_partition.values():
        current: list[LiveFile] = []
        size = 0
        for file in sorted(partition_files, key=lambda f: f.path):
            if current and size + file.size > target_file_bytes:
                bins.append(current)
                current, size = [], 0
            current.append(file)
            size += file.size
        bins.append(current)
    return [b for b in bins if len(b) >= 2]


def compact_table(
    uri: str,
    *,
    target_file_bytes: int = TARGET_FILE_BYTES,
    storage_options: dict[str, str] | None = None,
) -> CompactionResult | None:
    """Rewrite the table's small files as few large ones in one commit; None: no table at `uri`."""
    uri = normalize_location(uri)
    table = open_table(uri, storage_options)
    if table is None:
        return None
    live = [
        LiveFile(add["path"], add["size_bytes"],
                 {k: partition_value_to_str(v, k) for k, v in (add.get("partition") or {}).items()})
        for add in pa.table(table.get_add_actions(flatten=False)).to_pylist()
    ]
    bins = plan_bins(live, target_file_bytes)
    if not bins:
        log.info("%s: %d file(s), nothing to compact", uri, len(live))
        return CompactionResult(uri, None, len(live), len(live), 0)
    schema = pa.schema(table.schema().to_arrow())
    partition_by = list(table.metadata().partition_columns)
    data_schema = pa.schema([f for f in schema if f.name not in partition_by])
    fs, root = filesystem_for(uri, storage_options)
    write_id = uuid.uuid4().hex[:16]
    try:
        written = [file for files in bins for file in _rewrite(files, data_schema, fs, root, write_id)]
        replaced = [file.path for files in bins for file in files]
        version = commit_rewrite(uri, schema, replaced, written, partition_by=partition_by,
                                 storage_options=storage_options, custom_metadata={"tigertwin_operation": "compaction"})
    except BaseException:
        delete_files_of_write(fs, root, write_id)
        raise
    after = len(live) - len(replaced) + len(written)
    log.info("compacted %s: %d -> %d file(s) in %d bin(s), version %d", uri, len(live), after, len(bins), version)
    return CompactionResult(uri, version, len(live), after, len({tuple(b[0].partition_values.items()) for b in bins}))


def _rewrite(files: list[LiveFile], data_schema: pa.Schema, fs, root: str, write_id: str) -> list[DataFile]:
    """One bin's files (one partition) streamed into one new file of the same partition."""
    values = files[0].partition_values
    folder = partition_dir(values)
    # the partition's folder as the writer's root: the files hold only data columns, as Delta stores them
    writer = PartitionedFileWriter(data_schema, (), write_id, fs, f"{root}/{folder}".rstrip("/"))
    for file in files:
        with fs.open_input_file(data_file_path(root, file.path)) as handle:
            parquet = pq.ParquetFile(handle)
            for batch in parquet.iter_batches(batch_size=1 << 16, columns=data_schema.names):
                writer.write(batch)
    return [dataclasses.replace(f, path=folder + f.path, partition_values=values) for f in writer.close()]
