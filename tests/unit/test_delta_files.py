import datetime as dt
import json

import pyarrow as pa
import pytest

from pipelines.lakehouse.delta.files import ColumnStats, conform_batch, partition_value_to_str


def test_stats_bound_the_data_and_count_nulls():
    ts = [dt.datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)]
    table = pa.table({
        "x": pa.array([3, None, 1]),
        "s": pa.array(["b", "a", None]),
        "ts": pa.array([ts[0], None, ts[1]], pa.timestamp("us", tz="UTC")),
        "tags": pa.array([["a"], None, []], pa.list_(pa.string())),
    })
    accumulated = ColumnStats(table.schema)
    accumulated.update(table.slice(0, 2))  # stats merge across batches
    accumulated.update(table.slice(2))
    stats = json.loads(accumulated.to_json())
    assert stats["numRecords"] == 3
    assert stats["nullCount"] == {"x": 1, "s": 1, "ts": 1, "tags": 1}
    assert stats["minValues"]["x"] == 1 and stats["maxValues"]["s"] == "b"
    # 1.5 ms rounds down for the minimum and the maximum keeps whole ms
    assert stats["minValues"]["ts"] == "2024-01-01T00:00:00.001Z"
    assert "tags" not in stats["minValues"]


def test_conform_batch_names_the_offending_column():
    schema = pa.schema([pa.field("a", pa.int64(), nullable=False), pa.field("b", pa.string())])
    with pytest.raises(ValueError, match="'a' is NOT NULL"):
        conform_batch(pa.record_batch({"a": pa.array([1, None]), "b": pa.array(["x", "y"])}), schema)
    with pytest.raises(ValueError, match="column 'a'"):
        conform_batch(pa.record_batch({"a": pa.array(["x"]), "b": pa.array(["y"])}), schema)
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        conform_batch(pa.record_batch({"a": pa.array([1])}), schema)


def test_partition_values_are_safe_directory_names():
    assert partition_value_to_str(dt.date(2024, 5, 1), "d") == "2024-05-01"
    assert partition_value_to_str(None, "d") is None
    with pytest.raises(ValueError, match="partition column 'run'"):
        partition_value_to_str("a/b", "run")
