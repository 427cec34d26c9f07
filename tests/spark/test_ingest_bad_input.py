"""Bad input never reaches silver: per-table gates, tabular files read as text, implausible values, raw kept."""

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.errors import IngestError
from pipelines.ingest.formats import MAX_RAW_CHARS
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.sql import duckdb_connection

RUN_DATE = dt.date(2026, 11, 24)
MAPPING = (("user_id", "uid"), ("item_id", "sku"), ("ts", "at"), ("rating", "stars"))


def _config(fmt, events, items=(), **kw):
    return IngestConfig(format=fmt, dataset="t", run_date=RUN_DATE, events_paths=tuple(map(str, events)),
                        items_paths=tuple(map(str, items)), **kw)


def _quarantine(catalog):
    rows = duckdb_connection(catalog).sql(
        "SELECT row_number, reason, raw, raw_truncated FROM ops_quarantine ORDER BY row_number").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _events(catalog):
    return duckdb_connection(catalog).sql("SELECT user_id, item_id, rating FROM silver_events ORDER BY 1").fetchall()


def _movielens(tmp_path, ratings):
    items = tmp_path / "u.item"
    items.write_text("".join(f"{i}|Film {i}|01-Jan-1995||http://x{'|0' * 18}|1\n" for i in range(1, 6)))
    events = tmp_path / "u.data"
    events.write_text("".join(line + "\n" for line in ratings))
    return events, items


def test_an_all_bad_events_file_fails_beside_a_good_items_file_and_replace_keeps_the_table(spark, catalog, tmp_path):
    good, items = _movielens(tmp_path, [f"{u}\t{i}\t4\t88125{u}{i:03d}" for u in range(1, 8) for i in range(1, 6)])
    run_ingest(spark, catalog, _config("movielens", [good], [items]))
    before = _events(catalog)
    assert len(before) == 35
    bad = tmp_path / "bad.data"
    bad.write_text("".join(f"garbage line {n}\n" for n in range(3)))
    with pytest.raises(IngestError, match=r"silver.events input: none of its 3 rows is valid"):
        run_ingest(spark, catalog, _config("movielens", [bad], [items], mode="replace", max_bad_fraction=1.0))
    assert _events(catalog) == before  # 35 rows still there: no mode replaces a table with nothing


def test_the_gate_is_per_table(spark, catalog, tmp_path):
    # 2 bad events of 12 (17%) would pass a gate over items + events together (2 of 17 = 12%).
    lines = [f"1\t{i}\t4\t881250949" for i in range(1, 6)] * 2 + ["x", "y"]
    events, items = _movielens(tmp_path, lines)
    with pytest.raises(IngestError, match=r"silver.events input: 2 of 12 rows \(16.67%\) are bad"):
        run_ingest(spark, catalog, _config("movielens", [events], [items], max_bad_fraction=0.15))
    assert table_version(catalog.location("silver.events")) is None


def test_csv_is_read_as_text_row_by_row(spark, catalog, tmp_path):
    csv = tmp_path / "clicks.csv"
    big_block = "".join(f"u{n},000001,2026-11-01T10:00:00,{n % 5}\n" for n in range(70_000))  # ints first...
    csv.write_bytes(
        b"uid,sku,at,stars\n"
        + b"000001,1e5,2026-11-01T09:00:00,5\n"             # line 2: ids exactly as written
        + b"u\xff2,i1,2026-11-01T09:00:01,4\n"              # line 3: one undecodable byte
        + b"u3,i1\n"                                         # line 4: too few fields
        + b"u4,i1,2026-11-01T09:00:02,4,extra\n"             # line 5: too many fields
        + b"u5,i1,2026-11-01T09:00:03," + b"9" * (11 << 20) + b"\n"  # line 6: an 11 MB field
        + big_block.encode()
        + b"u9,000001,2026-11-01T11:00:00,high\n"            # after the int block: text in a number column
    )
    mapping = MAPPING
    report = run_ingest(spark, catalog, _config("tabular", [csv], events_mapping=mapping, max_bad_fraction=0.01))
    bad = _quarantine(catalog)
    assert {n: reason.split(":")[0] for n, (reason, _, _) in bad.items()} == {
        3: "unparseable", 4: "unparseable", 5: "unparseable", 6: "too large", 70_007: "bad type"}
    assert bad[3][1] == "u\ufffd2,i1,2026-11-01T09:00:01,4"  # raw text kept, readable
    assert bad[6][2] is True and len(bad[6][1]) == MAX_RAW_CHARS  # cut, and flagged as cut
    assert report.counts["events_written"] == 70_001
    rows = duckdb_connection(catalog).sql(
        "SELECT user_id, item_id FROM silver_events WHERE user_id IN ('000001', 'u0')").fetchall()
    assert sorted(rows) == [("000001", "1e5"), ("u0", "000001")]


def test_empty_or_headerless_csv_is_one_clear_error(spark, catalog, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IngestError, match=r"CSV file .*empty.csv is empty: it needs a header line"):
        run_ingest(spark, catalog, _config("tabular", [empty], events_mapping=MAPPING))
    header_only = tmp_path / "header.csv"
    header_only.write_text("uid,sku,at,stars\n")
    with pytest.raises(IngestError, match="silver.events input has no rows"):
        run_ingest(spark, catalog, _config("tabular", [header_only], events_mapping=MAPPING))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user,item,time\nu1,i1,2026-01-01\n")
    with pytest.raises(IngestError, match=r"has no column\(s\) \['uid', 'sku', 'at', 'stars'\]"):
        run_ingest(spark, catalog, _config("tabular", [wrong], events_mapping=MAPPING))


def test_parquet_whose_types_do_not_match_is_quarantined_row_by_row(spark, catalog, tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "uid": pa.array([b"u1", b"u\xff", b"u3"], pa.binary()),     # binary ids: decoded, or quarantined
        "sku": ["i1", "i1", "i1"],
        "at": ["2026-11-01T10:00:00", "2026-11-01T10:00:01", "yesterday"],  # strings, one not a time
        "stars": [4.0, 5.0, 3.0],
    }), path)
    run_ingest(spark, catalog, _config("tabular", [path], events_mapping=MAPPING, max_bad_fraction=1.0))
    assert _events(catalog) == [("u1", "i1", 4.0)]
    assert {n: reason.split(":")[0] for n, (reason, _, _) in _quarantine(catalog).items()} == {
        2: "unparseable", 3: "bad type"}


def test_implausible_times_and_non_finite_numbers_are_quarantined(spark, catalog, tmp_path):
    lines = [json.dumps(r) for r in [
        {"reviewerID": "A", "asin": "P", "overall": 5.0, "unixReviewTime": 1390000000},   # 1: fine
        {"reviewerID": "B", "asin": "P", "overall": 5.0, "unixReviewTime": -1},           # 2: 1969
        {"reviewerID": "C", "asin": "P", "overall": 5.0, "unixReviewTime": 9_999_999_999},  # 3: 2286
        {"reviewerID": "D", "asin": "P", "overall": 5.0, "unixReviewTime": 32_503_680_000_000},  # 4: year 3000 (ms)
        {"reviewerID": "E", "asin": "P", "overall": 5.0, "unixReviewTime": 1796083200 + 3 * 86400},  # 5: 2026-12-04
    ]] + ['{"reviewerID": "F", "asin": "P", "overall": NaN, "unixReviewTime": 1390000000}',     # 6: NaN
          '{"reviewerID": "G", "asin": "P", "overall": Infinity, "unixReviewTime": 1390000000}']  # 7: inf
    events = tmp_path / "reviews.json"
    events.write_text("\n".join(lines) + "\n")
    meta = tmp_path / "meta.json"
    meta.write_text(str({"asin": "P", "title": "Soap"}) + "\n")
    run_ingest(spark, catalog, _config("amazon2014", [events], [meta], max_bad_fraction=1.0))
    assert [r[0] for r in _events(catalog)] == ["A"]
    reasons = {n: reason for n, (reason, _, _) in _quarantine(catalog).items()}
    assert all(reasons[n].startswith("implausible value: column ts") for n in (2, 3, 4, 5))
    assert all(reasons[n].startswith("bad value: column rating") for n in (6, 7))
    assert all(raw is not None for _, raw, _ in _quarantine(catalog).values())


def test_unknown_item_rows_keep_their_raw_line(spark, catalog, tmp_path):
    events, items = _movielens(tmp_path, ["1\t1\t4\t881250949", "1\t99\t4\t881250949"])
    run_ingest(spark, catalog, _config("movielens", [events], [items], max_bad_fraction=1.0))
    assert _quarantine(catalog)[2] == ("unknown item: 99", "1\t99\t4\t881250949", False)


def test_a_file_that_breaks_off_fails_the_run_naming_it(spark, catalog, tmp_path):
    import gzip

    data = gzip.compress(b"".join(b"u%d a b c\n" % n for n in range(2000)))
    truncated = tmp_path / "user_sequence.txt.gz"
    truncated.write_bytes(data[: len(data) // 2])  # a gzip stream cut in the middle
    with pytest.raises(IngestError, match=r"user_sequence.txt.gz is unreadable after row \d+: unreadable file: EOFError"):
        run_ingest(spark, catalog, _config("sequences", [truncated]))
    assert table_version(catalog.location("silver.events")) is None
    corrupt = tmp_path / "events.parquet"
    corrupt.write_bytes(b"PAR1 this is not a Parquet file")
    with pytest.raises(IngestError, match=r"Parquet file .*events.parquet cannot be read"):
        run_ingest(spark, catalog, _config("tabular", [corrupt], events_mapping=MAPPING))


def test_byte_order_mark_crlf_and_deep_json_are_handled(spark, catalog, tmp_path):
    csv = tmp_path / "excel.csv"
    csv.write_bytes("\ufeffuid,sku,at,stars\r\nu1,i1,2026-11-01T10:00:00,4\r\n".encode())  # as Excel saves it
    run_ingest(spark, catalog, _config("tabular", [csv], events_mapping=MAPPING))
    assert _events(catalog) == [("u1", "i1", 4.0)]
    deep = tmp_path / "reviews.json"
    deep.write_text(json.dumps({"reviewerID": "A", "asin": "P", "overall": 5.0, "unixReviewTime": 1390000000})
                    + "\n" + "[" * 100_000 + "\n")
    meta = tmp_path / "meta.json"
    meta.write_text(str({"asin": "P"}) + "\n")
    run_ingest(spark, catalog, _config("amazon2014", [deep], [meta], max_bad_fraction=1.0))
    assert _quarantine(catalog)[2][0].startswith("unparseable")
