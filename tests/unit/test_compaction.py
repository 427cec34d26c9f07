"""Compaction (OPTIMIZE without Spark): same rows, fewer files, one dataChange=false commit, safe beside writers."""

import datetime as dt
import json
import os
import pathlib

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from pipelines.lakehouse.delta import (
    ConcurrentWriteError,
    compaction,
    table_version,
    write_delta_arrow,
)
from pipelines.lakehouse.delta.compaction import LiveFile, compact_table, plan_bins

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("day", pa.date32(), nullable=False),
])
DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


def _rows(ids, day=None):
    return pa.table({"id": list(ids), "name": [f"n{i}" for i in ids],
                     "day": [day or DAYS[i % 2] for i in ids]}, schema=SCHEMA)


def _append(uri, ids):
    return write_delta_arrow(_rows(ids), uri, mode="append", schema=SCHEMA, partition_by=["day"])


def _table_rows(uri):
    return sorted(DeltaTable(uri).to_pyarrow_table().select(SCHEMA.names).to_pylist(), key=lambda r: r["id"])


def _parquet_files(uri):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(uri) for f in fs if f.endswith(".parquet"))


def test_plan_bins_packs_each_partition_up_to_the_target_and_skips_lone_files():
    a = {"day": "2024-01-01"}
    b = {"day": "2024-01-02"}
    files = [LiveFile("a1", 40, a), LiveFile("a2", 40, a), LiveFile("a3", 40, a), LiveFile("a4", 500, a),
             LiveFile("b1", 10, b)]
    bins = plan_bins(files, target_file_bytes=100)
    assert [[f.path for f in b] for b in bins] == [["a1", "a2"]]  # a3 and a4 end up alone, b1 is alone
    assert plan_bins(files, target_file_bytes=1000)[0] == files[:4]


def test_compaction_rewrites_small_files_in_one_commit_without_a_data_change(tmp_path):
    uri = str(tmp_path / "t")
    for start in range(0, 50, 10):
        _append(uri, range(start, start + 10))
    before = _table_rows(uri)
    assert len(DeltaTable(uri).file_uris()) == 10

    result = compact_table(uri)

    assert (result.version, result.files_before, result.files_after) == (5, 10, 2)
    assert _table_rows(uri) == before
    assert len(DeltaTable(uri).file_uris()) == 2
    log = pathlib.Path(uri) / "_delta_log" / f"{5:020d}.json"
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    changes = [a.get("add") or a.get("remove") for a in actions if "add" in a or "remove" in a]
    assert len(changes) == 12 and not any(c["dataChange"] for c in changes)
    assert all(json.loads(a["add"]["stats"])["numRecords"] == 25 for a in actions if "add" in a)
    assert DeltaTable(uri, version=4).to_pyarrow_table().num_rows == 50  # time travel still reads the old files
    again = compact_table(uri)
    assert again.version is None and table_version(uri) == 5


def test_a_concurrent_overwrite_of_compacted_files_fails_the_compaction_and_leaves_no_file(tmp_path, monkeypatch):
    uri = str(tmp_path / "t")
    _append(uri, range(10))
    _append(uri, range(10, 20))
    real_rewrite = compaction._rewrite
    overwritten = []

    def overwrite_first(*args, **kwargs):  # another job replaces the table while compaction reads it
        if not overwritten:
            overwritten.append(write_delta_arrow(_rows([99]), uri, mode="overwrite", schema=SCHEMA,
                                                 partition_by=["day"]))
        return real_rewrite(*args, **kwargs)

    monkeypatch.setattr(compaction, "_rewrite", overwrite_first)
    with pytest.raises(ConcurrentWriteError, match="removed by a concurrent write"):
        compact_table(uri)
    files_after_overwrite = _parquet_files(uri)
    assert table_version(uri) == 2 and [r["id"] for r in _table_rows(uri)] == [99]
    assert len(files_after_overwrite) == 5  # 4 appended + 1 overwrite: none of the compaction's


def test_an_append_during_compaction_is_kept(tmp_path, monkeypatch):
    uri = str(tmp_path / "t")
    _append(uri, range(10))
    _append(uri, range(10, 20))
    real_rewrite = compaction._rewrite
    appended = []

    def append_first(*args, **kwargs):
        if not appended:
            appended.append(_append(uri, [100, 101]))
        return real_rewrite(*args, **kwargs)

    monkeypatch.setattr(compaction, "_rewrite", append_first)
    result = compact_table(uri)
    assert result.version == 3
    assert [r["id"] for r in _table_rows(uri)] == [*range(20), 100, 101]
