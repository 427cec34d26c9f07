"""Table upkeep without Spark: remove data files that no version references any more.

A Delta table accumulates files that no snapshot needs: ones an overwrite
replaced, and ones a killed or failed write left before it could commit or
clean up. `vacuum_table` deletes those older than the retention window
(delta-rs's full vacuum), plus this bridge's abort markers and the staging
folders of killed writes. Files younger
than the window stay, so a write in flight and time travel within the window
are never broken.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import pyarrow.fs as pafs

from pipelines.errors import UnsafeVacuumError
from pipelines.lakehouse.delta.commit import open_table
from pipelines.lakehouse.delta.files import ABORT_MARKERS, filesystem_for
from pipelines.lakehouse.delta.location import normalize_location
from pipelines.lakehouse.delta.native import STAGING

log = logging.getLogger(__name__)

# Below this a vacuum can delete the files of a write that has not committed yet (its commit
# would then name missing files): shorter windows need `force=True`, for when no job is writing.
MIN_SAFE_RETENTION_HOURS = 1.0


@dataclass(frozen=True)
class VacuumResult:
    uri: str
    files: tuple[str, ...]  # relative to the table root: removed, or what would be removed on a dry run
    dry_run: bool


def vacuum_table(
    uri: str,
    *,
    retention_hours: float,
    dry_run: bool = False,
    force: bool = False,
    storage_options: dict[str, str] | None = None,
) -> VacuumResult | None:
    """Remove (or, on a dry run, list) files no version needs, older than the window; None: no table."""
    if retention_hours < MIN_SAFE_RETENTION_HOURS and not (force or dry_run):
        raise UnsafeVacuumError(
            f"a {retention_hours:g} h window can delete the files of a write in flight; use at least "
            f"{MIN_SAFE_RETENTION_HOURS:g} h, or force it (`tigertwin vacuum --force-short-window`) only when "
            "no job is writing")
    uri = normalize_location(uri)
    table = open_table(uri, storage_options)
    if table is None:
        return None
    files = table.vacuum(
        # delta-rs takes whole hours: round up, never keep less than asked
        retention_hours=math.ceil(retention_hours), dry_run=dry_run, enforce_retention_duration=False, full=True,
    )
    markers = _old_entries(uri, ABORT_MARKERS, storage_options, retention_hours)
    staging = _old_entries(uri, STAGING, storage_options, retention_hours)
    fs, root = filesystem_for(uri, storage_options)
    staged_files = [info.path for folder in staging for info in fs.get_file_info(
        pafs.FileSelector(folder, recursive=True)) if info.type == pafs.FileType.File]
    files = [*files, *(path.removeprefix(root).lstrip("/") for path in staged_files)]
    if not dry_run:
        for path in markers:
            fs.delete_file(path)
        for folder in staging:
            fs.delete_dir(folder)
    log.info("%s %s: %d data file(s), %d abort marker(s)", "would vacuum" if dry_run else "vacuumed",
             uri, len(files), len(markers))
    return VacuumResult(uri, tuple(sorted(files)), dry_run)


def _old_entries(
    uri: str, folder: str, storage_options: dict[str, str] | None, retention_hours: float
) -> list[str]:
    """Entries of the table's `folder` (abort markers, staging folders) older than the window."""
    fs, root = filesystem_for(uri, storage_options)
    selector = pafs.FileSelector(f"{root}/{folder}", allow_not_found=True)
    cutoff_ns = (time.time() - retention_hours * 3600) * 1e9
    return [info.path for info in fs.get_file_info(selector) if (info.mtime_ns or 0) <= cutoff_ns]
