"""Is an upstream table there, non-empty and recent enough for tonight's run? (delta-rs only, no Spark)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pipelines.errors import StaleUpstreamError
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.delta.commit import open_table

# Upkeep commits (vacuum, compaction) change no data: they must not make a stale table look fresh.
_UPKEEP_OPERATIONS = ("VACUUM", "OPTIMIZE")


def last_data_write(table) -> dt.datetime:
    """When the table's data last changed (its newest commit that is not upkeep)."""
    for commit in table.history(50):
        if not str(commit.get("operation", "")).startswith(_UPKEEP_OPERATIONS):
            return dt.datetime.fromtimestamp(commit["timestamp"] / 1000, tz=dt.UTC)
    return dt.datetime.fromtimestamp(table.history(1)[0]["timestamp"] / 1000, tz=dt.UTC)


def table_problems(catalog: Catalog, names: Sequence[str], as_of: dt.datetime, max_age: dt.timedelta) -> list[str]:
    """One line per table that is missing, empty, or last written more than `max_age` before `as_of`."""
    problems = []
    for name in names:
        uri = catalog.location(name)
        table = open_table(uri, catalog.storage_options or None)
        if table is None:
            problems.append(f"{name}: no table at {uri}")
            continue
        if not table.file_uris():
            problems.append(f"{name}: empty at version {table.version()}")
            continue
        written = last_data_write(table)
        if written < as_of - max_age:
            problems.append(f"{name}: last written {written:%Y-%m-%d %H:%M} UTC, more than {max_age} before "
                            f"the run's logical time {as_of:%Y-%m-%d %H:%M} UTC")
    return problems


def require_fresh(catalog: Catalog, names: Sequence[str], as_of: dt.datetime, max_age: dt.timedelta) -> None:
    problems = table_problems(catalog, names, as_of, max_age)
    if problems:
        raise StaleUpstreamError("upstream tables are not ready for this run:\n  " + "\n  ".join(problems)
                                 + "\nrun (or fix) the DAG that writes them, then clear this run")
