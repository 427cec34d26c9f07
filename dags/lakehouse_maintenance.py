"""Daily upkeep: compact small files (optimize), then vacuum files no version references, older than the window."""

from airflow.sdk import Param, dag

from jobs.orchestration import dag_args, python_job
from pipelines.lakehouse.config import VACUUM_RETENTION_HOURS

PARAMS = {
    "retention_hours": Param(VACUUM_RETENTION_HOURS, type="number",
                             description="keep unreferenced files younger than this"),
    "dry_run": Param(False, type="boolean", description="vacuum: list what would be removed, remove nothing"),
    "force_short_window": Param(False, type="boolean",
                                description="allow a window under 1 hour (only when no job is writing)"),
}


@dag(schedule="@daily", **dag_args(**PARAMS))
def lakehouse_maintenance():
    # compaction first: the files it replaces become vacuum's once the window has passed
    optimize = python_job("optimize", "optimize", [])
    vacuum = python_job("vacuum", "vacuum", [
        "--retention-hours", "{{ params.retention_hours }}",
        "{{ '--dry-run' if params.dry_run else '' }}",
        "{{ '--force-short-window' if params.force_short_window else '' }}"])
    optimize >> vacuum


lakehouse_maintenance()
