"""Daily: ingest events -> re-cluster users whose history changed (TWIN-V2)."""

import pendulum
from airflow.sdk import Param, dag

from jobs.orchestration import DEFAULT_ARGS, spark_job, table_asset

USER_CLUSTERS = table_asset("gold.user_clusters")


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "format": Param("synthetic", type="string", description="ingest --format"),
        "path": Param("data/synthetic", type="string", description="dataset folder"),
        "gamma": Param(20, type="integer", description="largest cluster, in events"),
    },
    tags=["tigertwin"],
)
def user_behavior_clusters():
    ingest = spark_job("ingest", "ingest", ["--format", "{{ params.format }}", "--path", "{{ params.path }}"])
    cluster = spark_job("cluster_behaviors", "cluster_behaviors", ["--gamma", "{{ params.gamma }}"],
                        outlets=[USER_CLUSTERS])
    ingest >> cluster


user_behavior_clusters()
