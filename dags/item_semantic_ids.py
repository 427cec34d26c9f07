"""Daily: ingest the catalog -> embed new or changed items -> (re)train the RQ-VAE when asked or when
enough items are new -> assign semantic IDs (new items get IDs from the current model: cold start)."""

from airflow.sdk import Param, dag

from jobs.orchestration import (
    GPU_QUEUE,
    dag_args,
    ingest_task,
    rqvae_branch,
    spark_job,
    table_asset,
    torch_job,
)
from pipelines.items.config import DEFAULT_SOURCE, RETRAIN_NEW_ITEM_SHARE, SOURCES
from pipelines.presets import PRESETS

PARAMS = {
    "embedding_source": Param(DEFAULT_SOURCE, enum=list(SOURCES), description="embed-items --source"),
    "retrain_rqvae": Param(False, type="boolean", description="train a new RQ-VAE tonight"),
    "retrain_threshold": Param(RETRAIN_NEW_ITEM_SHARE, type="number",
                               description="share of new items that triggers a retrain"),
    "rqvae_epochs": Param(PRESETS["paper"].rqvae_epochs, type="integer"),
}


@dag(schedule="@daily", **dag_args(**PARAMS))
def item_semantic_ids():
    embed = spark_job("embed_items", "embed_items", ["--source", "{{ params.embedding_source }}"], queue=GPU_QUEUE,
                      outlets=[table_asset("gold.item_embeddings")])
    train = torch_job("train_rqvae", "train_rqvae", ["--epochs", "{{ params.rqvae_epochs }}"])
    assign = spark_job("assign_semantic_ids", "assign_semantic_ids", [], trigger_rule="none_failed_min_one_success",
                       outlets=[table_asset("gold.semantic_ids")])
    decide = rqvae_branch(train.task_id, assign.task_id)
    ingest_task() >> embed >> decide >> [train, assign]
    train >> assign


item_semantic_ids()
