"""The one place a SparkSession is built. Never called at import time."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipelines.lakehouse.config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def running_under_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway to its JVM already open.
    return "PYSPARK_GATEWAY_PORT" in os.environ


@contextlib.contextmanager
def _stderr_into(path: str | None) -> Iterator[None]:
    """While the gateway starts, file descriptor 2 points at `path`: the JVM (and the Python
    workers it forks) inherit it for their whole life; this process gets its terminal back."""
    if path is None:
        yield
        return
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log_file:
            os.dup2(log_file.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def build_spark_session(config: SparkConfig = SparkConfig()) -> SparkSession:
    """A session for the jobs: UTC, Arrow on, the Delta data source registered.

    Master: `config.master` if set; otherwise the launcher's under spark-submit,
    and `local[*]` for a plain `python -m jobs.X`.
    """
    from pyspark.sql import SparkSession

    # Python workers must import this package and pyarrow: run them on this interpreter.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    builder = SparkSession.builder.appName(config.app_name)
    master = config.master or (None if running_under_spark_submit() else "local[*]")
    if master:
        builder = builder.master(master)
    settings = {
        # Delta timestamps are UTC; batches and Arrow schemas must agree on one zone.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(config.arrow_batch_rows),
        "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        # Reads name their files from the Delta log; above 32 paths Spark would list them with a Spark job
        # of one task per file (a 300-task stage before a query over a 300-day table even starts).
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "4096",
        "spark.ui.enabled": str(config.ui_enabled).lower(),
        "spark.driver.memory": config.driver_memory,
        "spark.python.worker.reuse": "true",
        "spark.sql.parquet.compression.codec": "snappy",
        # Delta's timestamps are INT64 microseconds (Spark's default INT96 is legacy)
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if not running_under_spark_submit():
        settings["spark.pyspark.python"] = sys.executable
    # spark-submit started the JVM already, with its own stderr: nothing to move there
    jvm_log = None if running_under_spark_submit() else config.jvm_log
    if jvm_log:
        settings["spark.ui.showConsoleProgress"] = "false"
    settings.update(dict(config.extra_conf))
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _stderr_into(jvm_log):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if jvm_log:
        log.info("Spark's own log: %s", jvm_log)

    from pipelines.lakehouse.delta.source import DeltaDataSource

    spark.dataSource.register(DeltaDataSource)
    log.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark
