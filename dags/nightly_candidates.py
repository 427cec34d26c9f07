"""When both the semantic IDs and the user clusters are updated: check them -> train TIGER -> train the
TWIN-V2 ranker -> generate tonight's candidates (run_date partition) -> evaluate against baselines."""

from airflow.sdk import Param, dag

from jobs.orchestration import (
    GPU_QUEUE,
    dag_args,
    spark_job,
    table_asset,
    torch_job,
    upstream_check,
)
from pipelines.presets import PRESETS

PAPER = PRESETS["paper"]
PARAMS = {
    "tiger_size": Param("paper", enum=list(PRESETS), description="train-tiger --size (pipelines/presets.py)"),
    "tiger_epochs": Param(PAPER.tiger_train.epochs, type="integer"),
    "tiger_max_minutes": Param(PAPER.tiger_train.max_minutes, type="number", description="TIGER's wall-clock budget"),
    "twin_epochs": Param(PAPER.twin_epochs, type="integer"),
    # one depth for the ranker's blend and tonight's list: the weight is chosen for lists of this length
    "rerank_depth": Param(PAPER.rerank.depth, type="integer", description="TIGER candidates the ranker reorders"),
    "final_k": Param(PAPER.rerank.final_k, type="integer", description="list length after the ranker"),
}
UPSTREAM = ["gold.semantic_ids", "gold.user_clusters", "gold.item_embeddings", "silver.events"]


@dag(schedule=[table_asset("gold.semantic_ids"), table_asset("gold.user_clusters")], **dag_args(**PARAMS))
def nightly_candidates():
    tiger = torch_job("train_tiger", "train_tiger", [
        "--size", "{{ params.tiger_size }}", "--epochs", "{{ params.tiger_epochs }}",
        "--max-minutes", "{{ params.tiger_max_minutes }}", "--warm-start"])
    twin = torch_job("train_twin", "train_twin",
                     ["--epochs", "{{ params.twin_epochs }}", "--rerank-depth", "{{ params.rerank_depth }}"])
    generate = spark_job("generate_candidates", "generate_candidates",
                         ["--top-k", "{{ params.rerank_depth }}", "--final-k", "{{ params.final_k }}"],
                         queue=GPU_QUEUE, outlets=[table_asset("gold.candidates")])
    evaluate = spark_job("evaluate", "evaluate", ["--plot-dir", "plots"])
    upstream_check(UPSTREAM) >> tiger >> twin >> generate >> evaluate


nightly_candidates()
