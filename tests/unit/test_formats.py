import datetime as dt

import pandas as pd
import pytest

from pipelines.ingest.formats import (
    FORMATS,
    parse_amazon_meta_2014,
    parse_amazon_meta_2018,
    parse_amazon_meta_2023,
    parse_amazon_review_2014,
    parse_amazon_review_2023,
    parse_lines,
    parse_movielens_item,
    parse_movielens_rating,
    parse_sequence_line,
    tabular_format,
)
from pipelines.ingest.records import BadRow, coerce_event, coerce_item


def test_movielens_rating_line():
    (raw,) = parse_movielens_rating("196\t242\t3\t881250949")
    event = coerce_event(raw, "rating")
    assert event["user_id"] == "196" and event["item_id"] == "242" and event["rating"] == 3.0
    assert event["ts"] == dt.datetime(1997, 12, 4, 15, 55, 49, tzinfo=dt.UTC)


def test_movielens_item_line_genres_and_release():
    line = "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
    item = coerce_item(parse_movielens_item(line)[0])
    assert item["title"] == "Toy Story (1995)"
    assert item["categories"] == ["Animation", "Children's", "Comedy"]
    assert item["description"] == "Released 01-Jan-1995."


def test_sequence_line_keeps_order_in_timestamps():
    records = parse_sequence_line("A1 B001 B002 B003")
    assert [r["item_id"] for r in records] == ["B001", "B002", "B003"]
    ts = [r["ts"] for r in records]
    assert ts == sorted(ts) and len(set(ts)) == 3


def test_amazon_2014_review_and_python_literal_meta():
    review = parse_amazon_review_2014(
        '{"reviewerID": "A2", "asin": "B1", "overall": 5.0, "unixReviewTime": 1390000000, "reviewText": "ok"}'
    )[0]
    assert coerce_event(review, "review")["rating"] == 5.0
    meta = parse_amazon_meta_2014(
        "{'asin': 'B1', 'title': 'Soap', 'price': 4.5, 'categories': [['Beauty', 'Bath'], ['Beauty']], 'brand': 'X'}"
    )[0]
    item = coerce_item(meta)
    assert item["categories"] == ["Beauty", "Bath"] and item["price"] == 4.5 and item["brand"] == "X"


def test_amazon_2018_meta_price_string_and_description_list():
    meta = parse_amazon_meta_2018(
        '{"asin": "B2", "title": "Cream", "price": "$12.99", "category": ["Beauty", "Skin"], "description": ["a", "b"]}'
    )[0]
    item = coerce_item(meta)
    assert item["price"] == 12.99 and item["description"] == "a b"


def test_amazon_2023_uses_parent_asin_and_milliseconds():
    review = parse_amazon_review_2023(
        '{"rating": 4.0, "asin": "C1", "parent_asin": "P1", "user_id": "U", "timestamp": 1588687728923}'
    )[0]
    event = coerce_event(review, "review")
    assert event["item_id"] == "P1" and event["ts"].year == 2020
    meta = parse_amazon_meta_2023(
        '{"parent_asin": "P1", "title": "T", "main_category": "All Beauty", "categories": [], "price": null, "store": "S"}'
    )[0]
    item = coerce_item(meta)
    assert item["categories"] == ["All Beauty"] and item["brand"] == "S" and item["price"] is None


@pytest.mark.parametrize(
    ("parser", "line", "reason"),
    [
        (parse_movielens_rating, "196\t242\t3", "unparseable"),
        (parse_amazon_review_2014, '{"reviewerID": "A", "asin": "B"', "unparseable: invalid JSON"),
        (parse_amazon_meta_2014, "{'asin': 'B1', 'title': ", "unparseable: not a Python dict"),
        (parse_sequence_line, "lonely_user", "unparseable"),
    ],
)
def test_unparseable_lines(parser, line, reason):
    with pytest.raises(BadRow, match=reason):
        parser(line)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"item_id": "B", "ts": 1}, "missing key: user_id"),
        ({"user_id": "A", "item_id": "B", "ts": 1, "rating": "five"}, "bad type: column rating"),
        ({"user_id": "A", "item_id": "B", "ts": "yesterday"}, "bad type: column ts"),
        ({"user_id": "A", "item_id": "B", "ts": 1, "completion": 1.5}, "outside \\[0, 1\\]"),
    ],
)
def test_bad_events_name_the_column(raw, reason):
    with pytest.raises(BadRow, match=reason):
        coerce_event(raw, "x")


def test_parse_lines_splits_good_and_bad_rows_and_keeps_raw():
    fmt = FORMATS["movielens"]["events"]
    lines = pd.DataFrame({
        "source": ["u.data"] * 3,
        "row_number": [1, 2, 3],
        "line": ["1\t2\t3\t881250949", "1\t2\tx\t881250949", None],
        "raw": [None, None, "caf\ufffd"],
        "error": [None, None, "unparseable: not valid latin-1 text (byte 3)"],
    })
    out = parse_lines(lines, fmt)
    assert out["error"].isna().tolist() == [True, False, False]
    assert out.loc[1, "raw"] == "1\t2\tx\t881250949"
    assert "bad type: column rating" in out.loc[1, "error"]
    assert "not valid latin-1" in out.loc[2, "error"] and out.loc[2, "raw"] == "caf\ufffd"
    assert out.loc[0, "raw"] == "1\t2\t3\t881250949"  # good rows keep theirs too (an unknown item needs it)


def test_multi_event_line_is_all_or_nothing():
    fmt = tabular_format("events", {"user_id": "u", "item_id": "i", "ts": "t"})
    lines = pd.DataFrame({"source": ["f"], "row_number": [7], "line": ['{"u": "a", "i": null, "t": 5}'],
                          "raw": [None], "error": [None]})
    out = parse_lines(lines, fmt)
    assert len(out) == 1 and out.loc[0, "error"] == "missing key: item_id"


def test_oversize_ids_and_texts_are_bad_rows():
    with pytest.raises(BadRow, match="too large: column user_id"):
        coerce_event({"user_id": "u" * 5000, "item_id": "i", "ts": 1390000000}, "x")
    with pytest.raises(BadRow, match="too large: column description"):
        coerce_item({"item_id": "i", "description": "d" * (2 << 20)})


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e400", float("nan")])
def test_non_finite_numbers_are_bad_rows(value):
    with pytest.raises(BadRow, match="bad value: column rating: .* is not a finite number"):
        coerce_event({"user_id": "u", "item_id": "i", "ts": 1390000000, "rating": value}, "x")


def test_implausible_times_are_bad_rows():
    from pipelines.ingest.records import TimeRange

    times = TimeRange(dt.datetime(1995, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 25, 23, 59, tzinfo=dt.UTC))
    assert coerce_event({"user_id": "u", "item_id": "i", "ts": "2026-11-25T12:00:00Z"}, "x", times)["ts"].day == 25
    for ts in (0, -1, "1969-12-31T23:59:59", "3000-01-01T00:00:00", 1_600_000_000_000_000):
        with pytest.raises(BadRow, match="implausible value: column ts|out of range"):
            coerce_event({"user_id": "u", "item_id": "i", "ts": ts}, "x", times)
