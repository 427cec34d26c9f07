"""Line parsers for each published layout. Pure Python: a line in, raw records out, or `BadRow`.

A `LineFormat` says what a file holds (events or items), how it is encoded,
and how one line becomes records in the shared field names of records.py.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from pipelines.ingest.records import (
    ANY_TIME,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    BadRow,
    TimeRange,
    coerce_event,
    coerce_item,
)

Kind = Literal["events", "items"]
RawRecords = list[dict[str, Any]]

# u.genre, in the order of u.item's 19 flag columns.
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
# Sequence files carry order but no time: event k of a user gets SEQUENCE_EPOCH + k seconds.
SEQUENCE_EPOCH = dt.datetime(2014, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LineFormat:
    name: str
    kind: Kind
    parse: Callable[[str], RawRecords]
    encoding: str = "utf-8"
    event_type: str = "interaction"
    mapping: Mapping[str, str] = field(default_factory=dict)


def _split(line: str, sep: str, expected: int) -> list[str]:
    parts = line.rstrip("\r\n").split(sep)
    if len(parts) != expected:
        raise BadRow(f"unparseable: expected {expected} {sep!r}-separated fields, got {len(parts)}")
    return parts


def _json_object(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadRow(f"unparseable: invalid JSON ({exc.msg} at char {exc.pos})") from None
    except RecursionError:
        raise BadRow("unparseable: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise BadRow(f"unparseable: expected a JSON object, got {type(value).__name__}")
    return value


def _python_dict(line: str) -> dict[str, Any]:
    try:
        value = ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise BadRow(f"unparseable: not a Python dict literal ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise BadRow(f"unparseable: expected a dict, got {type(value).__name__}")
    return value


def parse_movielens_rating(line: str) -> RawRecords:
    user, item, rating, ts = _split(line, "\t", 4)
    return [{"user_id": user, "item_id": item, "rating": rating, "ts": ts}]


def parse_movielens_item(line: str) -> RawRecords:
    parts = _split(line, "|", 5 + len(MOVIELENS_GENRES))
    flags = parts[5:]
    if any(f not in ("0", "1") for f in flags):
        raise BadRow("bad type: genre flags must be 0 or 1")
    genres = [g for g, f in zip(MOVIELENS_GENRES, flags, strict=True) if f == "1"]
    release = parts[2].strip()
    return [{
        "item_id": parts[0],
        "title": parts[1],
        "categories": genres,
        "description": f"Released {release}." if release else None,
    }]


def parse_sequence_line(line: str) -> RawRecords:
    tokens = line.split()
    if len(tokens) < 2:
        raise BadRow("unparseable: a sequence line needs a user id and at least one item id")
    user, items = tokens[0], tokens[1:]
    return [
        {"user_id": user, "item_id": item, "ts": SEQUENCE_EPOCH + dt.timedelta(seconds=k)}
        for k, item in enumerate(items)
    ]


def parse_amazon_review_2014(line: str) -> RawRecords:
    # 2018 has the same field names.
    raw = _json_object(line)
    return [{"user_id": raw.get("reviewerID"), "item_id": raw.get("asin"),
             "rating": raw.get("overall"), "ts": raw.get("unixReviewTime")}]


def parse_amazon_review_2023(line: str) -> RawRecords:
    raw = _json_object(line)
    return [{"user_id": raw.get("user_id"), "item_id": raw.get("parent_asin") or raw.get("asin"),
             "rating": raw.get("rating"), "ts": raw.get("timestamp")}]


def _meta_fields(raw: dict[str, Any], id_key: str, categories: Any, brand_key: str) -> RawRecords:
    return [{"item_id": raw.get(id_key), "title": raw.get("title"), "brand": raw.get(brand_key),
             "categories": categories, "description": raw.get("description"),
             "price": raw.get("price")}]


def parse_amazon_meta_2014(line: str) -> RawRecords:
    raw = _python_dict(line)
    return _meta_fields(raw, "asin", raw.get("categories"), "brand")


def parse_amazon_meta_2018(line: str) -> RawRecords:
    raw = _json_object(line)
    return _meta_fields(raw, "asin", raw.get("category"), "brand")


def parse_amazon_meta_2023(line: str) -> RawRecords:
    raw = _json_object(line)
    main = raw.get("main_category")
    categories = raw.get("categories") or []
    if isinstance(categories, list) and main:
        categories = [main, *categories]
    return _meta_fields(raw, "parent_asin", categories, "store")


def tabular_parser(mapping: Mapping[str, str]) -> Callable[[str], RawRecords]:
    """Rows serialised as JSON by the tabular reader; `mapping` is {silver column: source column}."""

    def parse(line: str) -> RawRecords:
        row = _json_object(line)
        return [{target: row.get(src) for target, src in mapping.items()}]

    return parse


FORMATS: dict[str, dict[Kind, LineFormat]] = {
    "movielens": {
        "events": LineFormat("movielens", "events", parse_movielens_rating, "latin-1", "rating"),
        "items": LineFormat("movielens", "items", parse_movielens_item, "latin-1"),
    },
    "sequences": {
        "events": LineFormat("sequences", "events", parse_sequence_line, event_type="interaction"),
    },
    "amazon2014": {
        "events": LineFormat("amazon2014", "events", parse_amazon_review_2014, event_type="review"),
        "items": LineFormat("amazon2014", "items", parse_amazon_meta_2014),
    },
    "amazon2018": {
        "events": LineFormat("amazon2018", "events", parse_amazon_review_2014, event_type="review"),
        "items": LineFormat("amazon2018", "items", parse_amazon_meta_2018),
    },
    "amazon2023": {
        "events": LineFormat("amazon2023", "events", parse_amazon_review_2023, event_type="review"),
        "items": LineFormat("amazon2023", "items", parse_amazon_meta_2023),
    },
}


def tabular_format(kind: Kind, mapping: Mapping[str, str], event_type: str = "interaction") -> LineFormat:
    return LineFormat("tabular", kind, tabular_parser(mapping), event_type=event_type, mapping=mapping)


# Quarantined raw text is cut here (the reason and the row number already say what is wrong).
MAX_RAW_CHARS = 64 * 1024


def parse_lines(lines: pd.DataFrame, fmt: LineFormat, times: TimeRange = ANY_TIME) -> pd.DataFrame:
    """(source, row_number, line, raw, error) -> staged rows: the silver columns, `error` set on bad rows.

    Every row keeps its raw text (capped at MAX_RAW_CHARS, `raw_truncated` says so): bad rows for
    the quarantine, good ones for events that a later step refuses (an unknown item).
    """
    coerce = (
        (lambda record: coerce_event(record, fmt.event_type, times)) if fmt.kind == "events" else coerce_item
    )
    columns = [*(EVENT_COLUMNS if fmt.kind == "events" else ITEM_COLUMNS),
               "source", "row_number", "error", "raw", "raw_truncated"]
    empty = dict.fromkeys(columns)  # bad rows: every silver column null (not NaN: lists must stay None)
    out: list[dict[str, Any]] = []
    for source, row_number, line, raw, error in zip(
        lines["source"], lines["row_number"], lines["line"], lines["raw"], lines["error"], strict=True
    ):
        text = raw if raw is not None else line
        kept = {"raw": None if text is None else text[:MAX_RAW_CHARS],
                "raw_truncated": text is not None and len(text) > MAX_RAW_CHARS}
        try:
            if error is not None:
                raise BadRow(error)
            if line is None:
                raise BadRow(f"unparseable: not valid {fmt.encoding} text")
            records = [coerce(record) for record in fmt.parse(line)]  # all or nothing per line
        except BadRow as exc:
            out.append({**empty, "source": source, "row_number": row_number, "error": str(exc), **kept})
            continue
        for record in records:
            record.update(source=source, row_number=row_number, error=None, **kept)
            out.append(record)
    return pd.DataFrame(out, columns=columns)


# Where each format's files lie inside a dataset folder, in the published layout.
DATASET_LAYOUT: dict[str, dict[Kind, tuple[str, ...]]] = {
    "movielens": {"events": ("u.data",), "items": ("u.item",)},
    "sequences": {"events": ("user_sequence.txt",), "items": ()},
    "synthetic": {"events": ("events.parquet",), "items": ("items.parquet",)},
}


def files_in_dataset_folder(fmt: str, folder: str) -> dict[Kind, tuple[str, ...]]:
    """The events/items files of a dataset folder; raises naming the file that is missing."""
    import os

    if fmt not in DATASET_LAYOUT:
        raise ValueError(f"--path works for {sorted(DATASET_LAYOUT)}; give --events/--items for {fmt!r}")
    if os.path.isfile(folder) and fmt == "sequences":
        return {"events": (folder,), "items": ()}
    out: dict[Kind, tuple[str, ...]] = {}
    for kind, names in DATASET_LAYOUT[fmt].items():
        paths = tuple(os.path.join(folder, n) for n in names)
        for p in paths:
            if not os.path.exists(p):
                raise FileNotFoundError(f"{fmt} dataset folder {folder!r} has no {os.path.basename(p)!r}")
        out[kind] = paths
    return out
