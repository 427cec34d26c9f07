"""Daily: ingest the catalog -> embed new or changed items. (RQ-VAE training and ID assignment join here.)"""

import pendulum
from airflow.sdk import Param, dag

from jobs.orchestration import DEFAULT_ARGS, GPU_QUEUE, spark_job, table_asset

ITEM_EMBEDDINGS = table_asset("gold.item_embeddings")


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "format": Param("synthetic", type="string", description="ingest --format"),
        "path": Param("data/synthetic", type="string", description="dataset folder"),
    },
    tags=["tigertwin"],
)
def item_semantic_ids():
    ingest = spark_job("ingest", "ingest", ["--format", "{{ params.format }}", "--path", "{{ params.path }}"])
    embed = spark_job("embed_items", "embed_items", [], queue=GPU_QUEUE, outlets=[ITEM_EMBEDDINGS])
    ingest >> embed


item_semantic_ids()
