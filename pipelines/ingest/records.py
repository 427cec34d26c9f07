"""Validation of one raw record into the silver shape. Pure Python; errors are `BadRow` with a reason.

Every format parser maps its fields to these names and calls `coerce_event`
or `coerce_item`, so the rules (what a bad type or a missing key is) are the
same for MovieLens, Amazon, CSV and the synthetic data.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EVENT_COLUMNS = ("user_id", "item_id", "ts", "event_type", "rating", "completion", "source_event_id")
ITEM_COLUMNS = ("item_id", "title", "brand", "categories", "description", "price")
MAX_ID_CHARS = 1024  # an id longer than this is a broken row, not a key
MAX_TEXT_CHARS = 1 << 20  # as the CSV reader's per-field limit
_PRICE = re.compile(r"^\s*\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*$")


class BadRow(ValueError):
    """A raw row that cannot become a silver row; `str(exc)` is the quarantine reason."""


@dataclass(frozen=True)
class TimeRange:
    """Event times outside [earliest, latest] are implausible (a 1969 epoch-0, a year-3000 typo)."""

    earliest: dt.datetime
    latest: dt.datetime

    def check(self, ts: dt.datetime, key: str = "ts") -> dt.datetime:
        if not self.earliest <= ts <= self.latest:
            raise BadRow(f"implausible value: column {key}: {ts.isoformat()} is outside "
                         f"[{self.earliest:%Y-%m-%d}, {self.latest:%Y-%m-%d %H:%M}]")
        return ts


ANY_TIME = TimeRange(dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC))


def _id(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow(f"missing key: {key}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRow(f"bad type: column {key}: {str(value)[:80]!r} is not an id")
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise BadRow(f"too large: column {key}: an id of {len(text):,} characters (limit {MAX_ID_CHARS:,})")
    return text


def _optional_id(raw: Mapping[str, Any], key: str) -> str | None:
    """An id a source may leave out (an event's own id): absent or blank is None, anything else is checked."""
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _id(raw, key)


def _number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRow(f"bad type: column {key}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRow(f"bad type: column {key}: {value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise BadRow(f"bad value: column {key}: {value!r} is not a finite number")
    return number


def _timestamp(raw: Mapping[str, Any], key: str = "ts") -> dt.datetime:
    value = raw.get(key)
    if value is None or value == "":
        raise BadRow(f"missing key: {key}")
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and not _looks_numeric(value):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadRow(f"bad type: column {key}: {value!r} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    seconds = _number(raw, key)
    if seconds is None:
        raise BadRow(f"missing key: {key}")
    if seconds > 1e11:  # milliseconds (Amazon 2023) rather than seconds
        seconds /= 1000.0
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise BadRow(f"bad type: column {key}: {value!r} is out of range") from None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, list):  # Amazon 2018/2023 descriptions are lists of paragraphs
        value = " ".join(str(v) for v in value if v)
    if not isinstance(value, str | int | float):
        raise BadRow(f"bad type: column {key}: {type(value).__name__} is not text")
    text = str(value).strip()
    if len(text) > MAX_TEXT_CHARS:
        raise BadRow(f"too large: column {key}: {len(text):,} characters (limit {MAX_TEXT_CHARS:,})")
    return text or None


def _categories(raw: Mapping[str, Any], key: str = "categories") -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise BadRow(f"bad type: column {key}: {type(value).__name__} is not a list")
    flat: list[str] = []
    for entry in value:  # Amazon 2014 nests category paths: [["Beauty", "Makeup"], ...]
        for name in entry if isinstance(entry, list | tuple) else [entry]:
            name = str(name).strip()
            if name and name not in flat:
                flat.append(name)
    return flat


def _price(raw: Mapping[str, Any], key: str = "price") -> float | None:
    value = raw.get(key)
    if isinstance(value, str):
        if not value.strip():
            return None
        match = _PRICE.match(value)
        if not match:
            if "-" in value:  # "$10.00 - $20.00": a range has no single price
                return None
            raise BadRow(f"bad type: column {key}: {value!r} is not a price")
        return float(match.group(1).replace(",", ""))
    return _number(raw, key)


def coerce_event(raw: Mapping[str, Any], default_event_type: str, times: TimeRange = ANY_TIME) -> dict[str, Any]:
    completion = _number(raw, "completion")
    if completion is not None and not 0.0 <= completion <= 1.0:
        raise BadRow(f"bad value: column completion: {completion} is outside [0, 1]")
    event_type = raw.get("event_type") or default_event_type
    return {
        "user_id": _id(raw, "user_id"),
        "item_id": _id(raw, "item_id"),
        "ts": times.check(_timestamp(raw, "ts")),
        "event_type": str(event_type),
        "rating": _number(raw, "rating"),
        "completion": completion,
        "source_event_id": _optional_id(raw, "source_event_id"),
    }


def coerce_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "item_id": _id(raw, "item_id"),
        "title": _text(raw, "title"),
        "brand": _text(raw, "brand"),
        "categories": _categories(raw),
        "description": _text(raw, "description"),
        "price": _price(raw),
    }
