"""`tigertwin_lines`: a Spark Python data source that reads raw files as (source, row_number, line).

One input partition per file, so row numbers are exact 1-based line numbers
(gzip files cannot be split anyway). Text files are read as lines in their
encoding; CSV and Parquet rows are serialised to JSON lines so that every
format goes through the same parse-and-quarantine path.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

FORMAT_NAME = "tigertwin_lines"
LINES_SCHEMA = "source string, row_number long, line string"
_ARROW_SCHEMA = pa.schema([("source", pa.string()), ("row_number", pa.int64()), ("line", pa.string())])
_BATCH_ROWS = 20_000


def _text_lines(path: str, encoding: str) -> Iterator[tuple[int, str | None]]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue  # blank lines carry no row
            try:
                yield number, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError:
                yield number, None  # quarantined by the parser as undecodable


def _table_rows(path: str) -> Iterator[tuple[int, str | None]]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.endswith(".parquet") or path.endswith(".pq"):
        batches: Iterator[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS)
    else:
        # A column with a stray string is read as text; the parser then quarantines that row.
        batches = iter(pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22)))
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            yield number, json.dumps(row, default=str)


class LinesReader(DataSourceReader):
    def __init__(self, paths: list[str], encoding: str, tabular: bool) -> None:
        self.paths = paths
        self.encoding = encoding
        self.tabular = tabular

    def partitions(self) -> list[InputPartition]:
        return [InputPartition(p) for p in self.paths]  # one per file: exact line numbers

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        path = partition.value
        rows = _table_rows(path) if self.tabular else _text_lines(path, self.encoding)
        numbers: list[int] = []
        lines: list[str | None] = []
        for number, line in rows:
            numbers.append(number)
            lines.append(line)
            if len(numbers) >= _BATCH_ROWS:
                yield self._batch(path, numbers, lines)
                numbers, lines = [], []
        if numbers:
            yield self._batch(path, numbers, lines)

    @staticmethod
    def _batch(path: str, numbers: list[int], lines: list[str | None]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [pa.array([path] * len(numbers)), pa.array(numbers, pa.int64()), pa.array(lines, pa.string())],
            schema=_ARROW_SCHEMA,
        )


class LinesDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def schema(self) -> str:
        return LINES_SCHEMA

    def reader(self, schema) -> LinesReader:
        return LinesReader(
            json.loads(self.options["paths"]),
            self.options.get("encoding", "utf-8"),
            self.options.get("tabular", "false") == "true",
        )
