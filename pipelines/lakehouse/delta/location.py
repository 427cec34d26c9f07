"""Table locations: any local path a user can type, or an object-store URI.

delta-rs wants local tables as plain absolute paths and returns data file
URIs percent-encoded (`a%20b`), which Spark and pyarrow would read as a
literal `%20`. So every reader here builds data file paths itself from the
log's relative paths, and delta-rs only ever sees the absolute root.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from pipelines.errors import LakehousePathError

# delta-rs (1.6) URL-decodes local roots once more when it opens a table and panics on
# brackets, so these cannot hold a Delta table: refuse them up front with the reason.
_UNOPENABLE = re.compile(r"%[0-9A-Fa-f]{2}|[\[\]\\]|[\x00-\x1f\x7f]")


def is_uri(location: str) -> bool:
    return "://" in location


def normalize_location(location: str) -> str:
    """An absolute local path (validated) or the URI unchanged; raises LakehousePathError."""
    if is_uri(location):
        if location.startswith("file://"):
            return normalize_location(urllib.parse.unquote(location.removeprefix("file://")))
        return location.rstrip("/")
    path = os.path.abspath(os.path.expanduser(location))
    bad = _UNOPENABLE.search(path)
    if bad:
        raise LakehousePathError(
            f"lakehouse path {path!r} contains {bad.group()!r}, which the Delta library (delta-rs) "
            "cannot open in a local path (percent escapes like %20, brackets, backslashes and control "
            "characters); choose a path without it"
        )
    return path


def data_file_path(root: str, log_path: str) -> str:
    """Where a data file named in the Delta log lives (log paths are relative, percent-encoded URIs)."""
    if is_uri(log_path):
        return log_path if not log_path.startswith("file://") else urllib.parse.unquote(log_path[7:])
    relative = urllib.parse.unquote(log_path)
    if relative.startswith("/"):
        return relative
    return f"{root.rstrip('/')}/{relative}"
