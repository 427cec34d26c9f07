"""Every exception tigertwin raises on purpose, in one place.

Each is a `TigertwinError`: the CLI prints its message as one line and exits 2
(the traceback only under --log-level DEBUG). Messages name the file, table
or column and say what to do.
"""

from __future__ import annotations


class TigertwinError(Exception):
    """Base class: an expected failure with a message a user can act on."""

    exit_code = 2


class LakehousePathError(TigertwinError, ValueError):
    """A lakehouse location that cannot hold Delta tables."""


class SchemaMismatchError(TigertwinError, ValueError):
    """The data does not fit the table's schema; the message names the column."""


class ConcurrentWriteError(TigertwinError, RuntimeError):
    """Another writer changed what this write read; the table is as the other writer left it."""


class EmptyOverwriteError(TigertwinError, RuntimeError):
    """A write would replace a non-empty table with an empty one."""


class DeltaWriteError(TigertwinError, RuntimeError):
    """A write failed in a task or at commit; its files were removed and the table is as it was."""


class UnsafeVacuumError(TigertwinError, ValueError):
    """A vacuum window so short it could delete the files of a write that has not committed yet."""


class MissingTableError(TigertwinError, FileNotFoundError):
    """A table the job reads has never been written."""


class IngestError(TigertwinError, RuntimeError):
    """The input cannot be ingested (too many bad rows, nothing valid, unreadable); silver is untouched."""


class UpstreamTableError(TigertwinError, RuntimeError):
    """An input table of a training or serving job is empty or inconsistent."""


class StaleUpstreamError(TigertwinError, RuntimeError):
    """Upstream tables are missing, empty or too old for this run."""


class SemanticIdCapacityError(TigertwinError, ValueError):
    """More items share a 3-code prefix than the 4th token can tell apart."""


class ReadOnlySqlError(TigertwinError, PermissionError):
    """Analyst SQL tried to do more than read the catalog's views."""


class QueryError(TigertwinError, ValueError):
    """Analyst SQL that does not parse or names a column/view that does not exist."""


class StorageAccessError(TigertwinError, OSError):
    """A table's storage refused or could not be reached (credentials, endpoint, network)."""


class ArtifactIntegrityError(TigertwinError, RuntimeError):
    """A model file does not match the checksum its card recorded."""
