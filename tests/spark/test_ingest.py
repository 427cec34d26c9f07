"""Ingest end to end on Spark: published formats, corrupted copies, idempotence, real datasets."""

import datetime as dt
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from pipelines.ingest.formats import files_in_dataset_folder
from pipelines.ingest.pipeline import IngestConfig, IngestError, run_ingest
from pipelines.ingest.synthetic import SynthConfig, write_raw
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table

RUN_DATE = dt.date(2026, 11, 24)


def _config(fmt, events, items=(), **kw):
    return IngestConfig(format=fmt, dataset=kw.pop("dataset", "t"), run_date=RUN_DATE,
                        events_paths=tuple(map(str, events)), items_paths=tuple(map(str, items)), **kw)


def _quarantine(spark, catalog):
    return {(r.table, r.row_number, r.reason.split(":")[0]) for r in read_table(spark, catalog, "ops.quarantine").collect()}


def _write_lines(path, lines, gz=False, encoding="utf-8"):
    data = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding=encoding) as f:
            f.write(data)
    else:
        path.write_bytes(data.encode(encoding))
    return path


GENRES = "|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"


def test_movielens_layout_with_corrupted_rows(spark, catalog, tmp_path):
    items = _write_lines(tmp_path / "u.item", [
        f"1|Toy Story (1995)|01-Jan-1995||http://x{GENRES}",
        f"2|Caf\xe9 Noir (1990)|01-Jan-1990||http://y{GENRES}",
        "3|Broken|01-Jan-1990||",                               # row 3: truncated line
    ], encoding="latin-1")
    events = _write_lines(tmp_path / "u.data", [
        "10\t1\t4\t881250949",
        "10\t2\t3\t881250950",
        "11\t1\tfive\t881250951",                                # row 3: string where a number belongs
        "11\t1\t5",                                              # row 4: truncated
        "11\t99\t5\t881250952",                                  # row 5: unknown item
        "\t2\t5\t881250953",                                     # row 6: missing id
        "12\t2\t2\t881250954",
    ])
    report = run_ingest(spark, catalog, _config("movielens", [events], [items], max_bad_fraction=1.0))
    assert report.counts["items_written"] == 2 and report.counts["events_written"] == 3
    assert _quarantine(spark, catalog) == {
        ("silver.items", 3, "unparseable"),
        ("silver.events", 3, "bad type"),
        ("silver.events", 4, "unparseable"),
        ("silver.events", 5, "unknown item"),
        ("silver.events", 6, "missing key"),
    }
    titles = {r.item_id: r.title for r in read_table(spark, catalog, "silver.items").collect()}
    assert titles["2"] == "Café Noir (1990)"  # Latin-1 decoded


def test_amazon_2014_reviews_and_python_literal_meta(spark, catalog, tmp_path):
    reviews = _write_lines(tmp_path / "reviews_Beauty_5.json.gz", [
        json.dumps({"reviewerID": "A1", "asin": "B01", "reviewerName": "x", "helpful": [0, 0],
                    "reviewText": "good", "overall": 5.0, "summary": "s", "unixReviewTime": 1390000000,
                    "reviewTime": "01 17, 2014"}),
        json.dumps({"reviewerID": "A1", "asin": "B02", "overall": 4.0, "unixReviewTime": 1390000100}),
        '{"reviewerID": "A2", "asin": "B01", "overall": 3.0, "unixRevi',          # row 3: bad JSON
        json.dumps({"asin": "B01", "overall": 3.0, "unixReviewTime": 1390000200}),  # row 4: missing id
        json.dumps({"reviewerID": "A3", "asin": "B01", "overall": "3 stars", "unixReviewTime": 1390000250}),  # row 5
        json.dumps({"reviewerID": "A3", "asin": "B09", "overall": 1.0, "unixReviewTime": 1390000300}),  # row 6
    ], gz=True)
    meta = _write_lines(tmp_path / "meta_Beauty.json.gz", [
        str({"asin": "B01", "title": "Rose Soap", "price": 4.5, "brand": "Acme",
             "categories": [["Beauty", "Bath & Body"]], "salesRank": {"Beauty": 10}}),
        str({"asin": "B02", "description": "Cream.", "categories": [["Beauty", "Skin Care"]]}),
        "{'asin': 'B03', 'title': ",                                                 # row 3: truncated
    ], gz=True)
    report = run_ingest(spark, catalog, _config("amazon2014", [reviews], [meta], max_bad_fraction=1.0))
    assert report.counts["events_written"] == 2
    assert _quarantine(spark, catalog) == {
        ("silver.events", 3, "unparseable"), ("silver.events", 4, "missing key"),
        ("silver.events", 5, "bad type"), ("silver.events", 6, "unknown item"),
        ("silver.items", 3, "unparseable"),
    }
    soap = read_table(spark, catalog, "silver.items").filter("item_id = 'B01'").first()
    assert soap.categories == ["Beauty", "Bath & Body"] and soap.brand == "Acme" and soap.price == 4.5


@pytest.mark.parametrize("edition", ["amazon2018", "amazon2023"])
def test_amazon_2018_and_2023_json_lines(spark, catalog, tmp_path, edition):
    if edition == "amazon2018":
        review = {"overall": 5.0, "verified": True, "reviewerID": "U1", "asin": "P1", "unixReviewTime": 1500000000}
        meta = {"asin": "P1", "title": "Lip Balm", "brand": "B", "category": ["Beauty"], "price": "$3.99",
                "description": ["Soft."]}
    else:
        review = {"rating": 5.0, "title": "t", "text": "x", "asin": "C1", "parent_asin": "P1",
                  "user_id": "U1", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": True}
        meta = {"main_category": "All Beauty", "title": "Lip Balm", "store": "B", "categories": [],
                "price": 3.99, "parent_asin": "P1", "description": ["Soft."]}
    reviews = _write_lines(tmp_path / "reviews.jsonl", [json.dumps(review)])
    metas = _write_lines(tmp_path / "meta.jsonl", [json.dumps(meta)])
    run_ingest(spark, catalog, _config(edition, [reviews], [metas]))
    item = read_table(spark, catalog, "silver.items").first()
    assert (item.item_id, item.title, item.brand, item.price, item.description) == ("P1", "Lip Balm", "B", 3.99, "Soft.")
    assert read_table(spark, catalog, "silver.events").first().user_id == "U1"


def test_tabular_csv_with_column_mapping(spark, catalog, tmp_path):
    csv = tmp_path / "clicks.csv"
    csv.write_text("uid,sku,when,stars\nu1,i1,2024-03-01T10:00:00,4\nu2,i1,2024-03-02T10:00:00,oops\n")
    mapping = (("user_id", "uid"), ("item_id", "sku"), ("ts", "when"), ("rating", "stars"))
    run_ingest(spark, catalog, _config("tabular", [csv], events_mapping=mapping, max_bad_fraction=1.0))
    assert [r.user_id for r in read_table(spark, catalog, "silver.events").collect()] == ["u1"]
    assert _quarantine(spark, catalog) == {("silver.events", 3, "bad type")}  # line 3 of the file (header = 1)


def test_too_many_bad_rows_fails_without_touching_silver(spark, catalog, tmp_path):
    events = _write_lines(tmp_path / "user_sequence.txt", ["u1 a b c", "lonely", "u2 a"])
    with pytest.raises(IngestError, match="1 of 5 rows"):
        run_ingest(spark, catalog, _config("sequences", [events], max_bad_fraction=0.1))
    assert table_version(catalog.location("silver.events")) is None
    assert _quarantine(spark, catalog) == {("silver.events", 2, "unparseable")}


def test_synthetic_ingest_is_idempotent_and_merges(spark, catalog, tmp_path):
    files = files_in_dataset_folder("synthetic", write_raw(SynthConfig(n_items=50, n_users=8, median_history=20),
                                                           str(tmp_path / "synth"))["items"].rsplit("/", 1)[0])
    config = _config("synthetic", files["events"], files["items"], dataset="synth")
    first = run_ingest(spark, catalog, config)
    snapshot = sorted(map(tuple, read_table(spark, catalog, "silver.events").collect()))
    items_before = sorted(map(tuple, read_table(spark, catalog, "silver.items").collect()))
    second = run_ingest(spark, catalog, config)
    assert second.counts == {**first.counts, "events_added": 0}  # the batch already held every event
    assert sorted(map(tuple, read_table(spark, catalog, "silver.events").collect())) == snapshot
    assert sorted(map(tuple, read_table(spark, catalog, "silver.items").collect())) == items_before
    metrics = read_table(spark, catalog, "ops.metrics").filter("job = 'ingest'")
    assert metrics.count() == metrics.select("metric").distinct().count()  # no duplicates on rerun
    # completion exactly as the raw file has it (null where the generator left it unknown), never rescaled
    key = ["user_id", "item_id", "ts"]
    raw = pd.read_parquet(files["events"][0])
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    stored = read_table(spark, catalog, "silver.events").toPandas()
    stored["ts"] = pd.to_datetime(stored["ts"], utc=True)  # the session's zone is UTC
    merged = raw[key + ["completion"]].merge(stored[key + ["completion"]], on=key, suffixes=("_raw", ""))
    assert len(merged) == len(stored) == len(raw) and merged["completion"].isna().any()
    assert merged["completion"].isna().equals(merged["completion_raw"].isna())
    assert np.allclose(merged["completion"].dropna(), merged["completion_raw"].dropna())


def test_real_movielens_counts(spark, catalog, shared_data):
    report = run_ingest(spark, catalog, _config(
        "movielens", [shared_data / "ml-100k/u.data"], [shared_data / "ml-100k/u.item"], dataset="ml-100k"))
    lines = sum(1 for line in (shared_data / "ml-100k/u.data").read_bytes().splitlines() if line.strip())
    events = read_table(spark, catalog, "silver.events")
    assert report.counts["quarantined"] == 0
    assert events.count() == lines and report.counts["items_written"] == 1682
    assert events.select("user_id").distinct().count() == 943


def test_real_beauty_counts(spark, catalog, shared_data):
    report = run_ingest(spark, catalog, _config(
        "sequences", [shared_data / "amazon-beauty/user_sequence.txt"], dataset="beauty"))
    events = read_table(spark, catalog, "silver.events")
    assert report.counts["quarantined"] == 0
    assert (events.select("user_id").distinct().count(), report.counts["items_written"], events.count()) == (
        22_363, 12_101, 198_502)


def test_missing_input_file_is_named(spark, catalog, tmp_path):
    with pytest.raises(FileNotFoundError, match="events file .*nope.csv"):
        run_ingest(spark, catalog, _config("tabular", [tmp_path / "nope.csv"]))
