"""Typed, frozen configuration shared by the jobs.

Every value has a default that runs on one laptop (`local[*]`, a local Delta
root); environment variables let a deployment point the same code elsewhere
without editing it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

ENV_LAKEHOUSE_ROOT = "TIGERTWIN_LAKEHOUSE_ROOT"
ENV_SPARK_MASTER = "TIGERTWIN_SPARK_MASTER"
ENV_ARTIFACTS_ROOT = "TIGERTWIN_ARTIFACTS_ROOT"
ENV_SPARK_LOG_DIR = "TIGERTWIN_SPARK_LOG_DIR"  # where the jobs' JVM output goes (default: the temp dir)


@dataclass(frozen=True)
class SparkConfig:
    """How to build the SparkSession."""

    app_name: str = "tigertwin"
    # None: local[*] when run as a plain script, the launcher's master under spark-submit.
    master: str | None = None
    # Shuffle partitions: Spark's default 200 is for clusters; 8 keeps local stages snappy.
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    ui_enabled: bool = False
    # Rows per Arrow batch between the JVM and Python (Spark's default is 10k): larger batches
    # mean fewer Python round trips for the Delta writer and the pandas UDFs.
    arrow_batch_rows: int = 100_000
    # Extra `spark.*` settings, applied last, e.g. {"spark.executor.memory": "8g"}.
    extra_conf: tuple[tuple[str, str], ...] = ()
    # A file for the JVM's own stderr (log4j banner, WARN lines, stage progress, stack traces) so a
    # user's terminal shows only the job's lines; None leaves it on the terminal (--log-level DEBUG).
    jvm_log: str | None = None


@dataclass(frozen=True)
class LakehouseConfig:
    """Where the Delta tables live: a local path or any URI delta-rs supports (s3://, gs://, az://)."""

    root: str = "lakehouse"
    # delta-rs / pyarrow storage options (credentials, endpoints) for object stores.
    storage_options: tuple[tuple[str, str], ...] = field(default=())

    def for_executors(self) -> LakehouseConfig:
        """With the driver's AWS_* environment folded into the storage options, for work shipped to
        executors that may run where those variables are unset (a local root is returned as it is)."""
        if "://" not in self.root or self.root.startswith("file://"):
            return self
        from pipelines.lakehouse.delta.files import object_store_options

        return dataclasses.replace(self, storage_options=tuple(sorted(
            object_store_options(dict(self.storage_options)).items())))


# Unreferenced data files younger than this survive a vacuum (writes in flight, time travel).
VACUUM_RETENTION_HOURS = 7 * 24


def logical_time(run_date: dt.date) -> dt.datetime:
    """A run's logical time: midnight UTC of its date. Jobs stamp rows with it, never with now()."""
    return dt.datetime.combine(run_date, dt.time(), tzinfo=dt.UTC)
