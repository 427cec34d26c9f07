"""Daily: ingest events -> re-cluster users whose history changed (TWIN-V2)."""

from airflow.sdk import Param, dag

from jobs.orchestration import dag_args, ingest_task, spark_job, table_asset
from pipelines.behavior.config import HOLDOUTS, ClusteringConfig

PARAMS = {
    "gamma": Param(ClusteringConfig.gamma, type="integer", description="largest cluster, in events"),
    # the ranker trains on validation events and is evaluated on test events: keep both out of the clusters
    "holdout": Param("valid_test", enum=list(HOLDOUTS), description="cluster-behaviors --holdout"),
}


@dag(schedule="@daily", **dag_args(**PARAMS))
def user_behavior_clusters():
    cluster = spark_job("cluster_behaviors", "cluster_behaviors",
                        ["--gamma", "{{ params.gamma }}", "--holdout", "{{ params.holdout }}"],
                        outlets=[table_asset("gold.user_clusters")])
    ingest_task() >> cluster


user_behavior_clusters()
