"""`tigertwin_lines`: a Spark Python data source that reads raw files as (source, row_number, line, raw, error).

One input partition per file, so row numbers are exact 1-based line numbers
(gzip files cannot be split anyway). Text files are read as lines in their
encoding. CSV is read as text by Python's csv module (no type inference: ids
stay exactly as written) and Parquet cell by cell; each row becomes a JSON
line so that every format goes through the same parse-and-quarantine path.

Problems the reader itself sees are set in `error` with the row's original
text in `raw`, and the row is quarantined: undecodable bytes, a CSV row with
the wrong number of fields, an oversize line or field. A file that breaks off
(truncated gzip, corrupt Parquet page) yields one row with an "unreadable
file" error after the rows read so far; ingest then fails naming it.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import gzip
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from pipelines.errors import IngestError

FORMAT_NAME = "tigertwin_lines"
LINES_SCHEMA = "source string, row_number long, line string, raw string, error string"
_ARROW_SCHEMA = pa.schema([
    ("source", pa.string()), ("row_number", pa.int64()), ("line", pa.string()),
    ("raw", pa.string()), ("error", pa.string()),
])
_BATCH_ROWS = 20_000
MAX_FIELD_CHARS = 1 << 20  # a CSV field or Parquet cell larger than 1 MiB is not an id, title or number
MAX_LINE_BYTES = 16 << 20  # a JSON/text line larger than 16 MiB is not one record
UNREADABLE = "unreadable file"
PARQUET_SUFFIXES = (".parquet", ".pq")

Row = tuple[int, str | None, str | None, str | None]  # row number, line, raw text, error


def is_parquet(path: str) -> bool:
    return path.endswith(PARQUET_SUFFIXES)


def _open_binary(path: str) -> IO[bytes]:
    opened: Any = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return opened


def _text_lines(path: str, encoding: str) -> Iterator[Row]:
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue  # blank lines carry no row
            if len(raw) > MAX_LINE_BYTES:
                yield number, None, raw[:4096].decode(encoding, "replace"), (
                    f"too large: line of {len(raw):,} bytes (limit {MAX_LINE_BYTES:,})")
                continue
            try:
                yield number, raw.decode(encoding).rstrip("\r\n"), None, None
            except UnicodeDecodeError as exc:
                yield number, None, raw.decode(encoding, "replace").rstrip("\r\n"), (
                    f"unparseable: not valid {encoding} text (byte {exc.start})")


class _DecodedLines:
    """Physical lines for csv.reader, decoded one by one; remembers which lines made the current record."""

    def __init__(self, handle: IO[bytes], encoding: str) -> None:
        self.handle = handle
        self.encoding = encoding
        self.number = 0
        self.record: list[str] = []
        self.record_start = 1
        self.undecodable: list[Row] = []

    def __iter__(self) -> _DecodedLines:
        return self

    def __next__(self) -> str:
        while True:
            raw = next(self.handle)
            self.number += 1
            try:
                text = raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                self.undecodable.append((self.number, None, raw.decode(self.encoding, "replace").rstrip("\r\n"),
                                         f"unparseable: not valid {self.encoding} text (byte {exc.start})"))
                continue
            if self.number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name
            if not self.record:
                self.record_start = self.number
            self.record.append(text)
            return text

    def take_record(self) -> tuple[int, str]:
        start, text = self.record_start, "".join(self.record).rstrip("\r\n")
        self.record = []
        return start, text


def csv_header(path: str, encoding: str = "utf-8") -> list[str]:
    """The header of a CSV file; IngestError naming the file when there is no usable one."""
    try:
        with _open_binary(path) as handle:
            lines = _DecodedLines(handle, encoding)
            header = next(csv.reader(lines), None)
            if lines.undecodable and header is None:
                raise IngestError(f"CSV file {path}: the header line is not valid {encoding} text")
    except (OSError, EOFError, csv.Error) as exc:
        raise IngestError(f"CSV file {path} cannot be read: {exc}") from None
    if header is None or not any(name.strip() for name in header):
        raise IngestError(f"CSV file {path} is empty: it needs a header line naming its columns")
    names = [name.strip() for name in header]
    if "" in names or len(set(names)) != len(names):
        raise IngestError(f"CSV file {path}: the header {names} has empty or repeated column names")
    return names


def parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(f"Parquet file {path} cannot be read: {exc}") from None


def _csv_rows(path: str, encoding: str) -> Iterator[Row]:
    csv.field_size_limit(sys.maxsize)  # our own per-field limit below quarantines instead of failing
    with _open_binary(path) as handle:
        lines = _DecodedLines(handle, encoding)
        reader = csv.reader(lines)
        header: list[str] | None = None
        while True:
            error: csv.Error | None = None
            fields: list[str] | None = None
            try:
                fields = next(reader)
            except StopIteration:
                pass
            except csv.Error as exc:
                error = exc
            yield from lines.undecodable
            lines.undecodable.clear()
            if fields is None and error is None:
                break
            start, text = lines.take_record()
            if fields is None:
                yield start, None, text, f"unparseable: {error}"
                continue
            if header is None:
                header = [name.strip() for name in fields]
                continue
            if not any(f.strip() for f in fields):
                continue  # blank line
            if len(fields) != len(header):
                yield start, None, text, f"unparseable: expected {len(header)} fields, got {len(fields)}"
                continue
            oversize = next((h for h, f in zip(header, fields, strict=True) if len(f) > MAX_FIELD_CHARS), None)
            if oversize is not None:
                yield start, None, text, f"too large: column {oversize} is over {MAX_FIELD_CHARS:,} characters"
                continue
            record = {h: (f if f != "" else None) for h, f in zip(header, fields, strict=True)}
            yield start, json.dumps(record), text, None


def _cell(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")  # UnicodeDecodeError: the row is quarantined
    if isinstance(value, dt.datetime | dt.date | dt.time | decimal.Decimal):
        return value.isoformat() if not isinstance(value, decimal.Decimal) else str(value)
    if isinstance(value, list):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {k: _cell(v) for k, v in value.items()}
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        raise ValueError(f"a value is over {MAX_FIELD_CHARS:,} characters")
    return value


def _parquet_rows(path: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            try:
                line = json.dumps({k: _cell(v) for k, v in row.items()})
            except (UnicodeDecodeError, ValueError) as exc:
                yield number, None, repr(row)[:4096], f"unparseable: {exc}"
                continue
            yield number, line, None, None


def file_rows(path: str, encoding: str, tabular: bool) -> Iterator[Row]:
    """Every row of one file; a read that breaks off ends with one UNREADABLE row."""
    if not tabular:
        rows = _text_lines(path, encoding)
    elif is_parquet(path):
        rows = _parquet_rows(path)
    else:
        rows = _csv_rows(path, encoding)
    last = 0
    try:
        for row in rows:
            last = row[0]
            yield row
    except (OSError, EOFError, pa.ArrowException, ValueError) as exc:  # truncated gzip, corrupt Parquet, ...
        yield last + 1, None, None, f"{UNREADABLE}: {type(exc).__name__}: {exc}"


class LinesReader(DataSourceReader):
    def __init__(self, paths: list[str], encoding: str, tabular: bool) -> None:
        self.paths = paths
        self.encoding = encoding
        self.tabular = tabular

    def partitions(self) -> list[InputPartition]:
        return [InputPartition(p) for p in self.paths]  # one per file: exact line numbers

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        path = partition.value
        columns: list[list[Any]] = [[], [], [], []]
        for row in file_rows(path, self.encoding, self.tabular):
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            if len(columns[0]) >= _BATCH_ROWS:
                yield self._batch(path, columns)
                columns = [[], [], [], []]
        if columns[0]:
            yield self._batch(path, columns)

    @staticmethod
    def _batch(path: str, columns: list[list[Any]]) -> pa.RecordBatch:
        numbers, lines, raws, errors = columns
        return pa.RecordBatch.from_arrays(
            [pa.array([path] * len(numbers)), pa.array(numbers, pa.int64()), pa.array(lines, pa.string()),
             pa.array(raws, pa.string()), pa.array(errors, pa.string())],
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
