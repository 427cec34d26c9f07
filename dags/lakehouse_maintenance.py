"""Weekly: vacuum every table (remove data files no version references, older than the retention window)."""

from airflow.sdk import Param, dag

from jobs.orchestration import dag_args, python_job
from pipelines.lakehouse.config import VACUUM_RETENTION_HOURS

PARAMS = {
    "retention_hours": Param(VACUUM_RETENTION_HOURS, type="number",
                             description="keep unreferenced files younger than this"),
    "dry_run": Param(False, type="boolean", description="list what would be removed, remove nothing"),
    "force_short_window": Param(False, type="boolean",
                                description="allow a window under 1 hour (only when no job is writing)"),
}


@dag(schedule="@weekly", **dag_args(**PARAMS))
def lakehouse_maintenance():
    python_job("vacuum", "vacuum", [
        "--retention-hours", "{{ params.retention_hours }}",
        "{{ '--dry-run' if params.dry_run else '' }}",
        "{{ '--force-short-window' if params.force_short_window else '' }}"])


lakehouse_maintenance()
