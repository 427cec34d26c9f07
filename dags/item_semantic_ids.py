"""Daily: ingest the catalog -> embed new or changed items. (RQ-VAE training and ID assignment join here.)"""

from airflow.sdk import dag

from jobs.orchestration import GPU_QUEUE, dag_args, ingest_task, spark_job, table_asset


@dag(schedule="@daily", **dag_args())
def item_semantic_ids():
    embed = spark_job("embed_items", "embed_items", [], queue=GPU_QUEUE,
                      outlets=[table_asset("gold.item_embeddings")])
    ingest_task() >> embed


item_semantic_ids()
