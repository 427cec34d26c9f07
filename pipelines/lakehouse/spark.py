"""The one place a SparkSession is built. Never called at import time."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from pipelines.lakehouse.config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def running_under_spark_submit() -> bool:
    # spark-submit starts the Python driver with a gateway to its JVM already open.
    return "PYSPARK_GATEWAY_PORT" in os.environ


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
    settings.update(dict(config.extra_conf))
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")

    from pipelines.lakehouse.delta.source import DeltaDataSource

    spark.dataSource.register(DeltaDataSource)
    log.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark
