"""Daily: ingest events -> re-cluster users whose history changed (TWIN-V2)."""

from airflow.sdk import Param, dag

from jobs.orchestration import dag_args, ingest_task, spark_job, table_asset

GAMMA = Param(20, type="integer", description="largest cluster, in events")


@dag(schedule="@daily", **dag_args(gamma=GAMMA))
def user_behavior_clusters():
    cluster = spark_job("cluster_behaviors", "cluster_behaviors", ["--gamma", "{{ params.gamma }}"],
                        outlets=[table_asset("gold.user_clusters")])
    ingest_task() >> cluster


user_behavior_clusters()
