"""When both the semantic IDs and the user clusters are updated: check them -> train the retrievers (TIGER,
SASRec as candidate versions, each promoted by its gate only when not worse than the served one; popularity)
-> train the TWIN-V2 ranker on their union -> generate tonight's candidates (run_date partition) -> evaluate
tonight's list against every retriever alone."""

import datetime as dt

from airflow.sdk import Param, dag

from jobs.orchestration import (
    GPU_QUEUE,
    dag_args,
    python_job,
    spark_job,
    table_asset,
    torch_job,
    upstream_check,
)
from models.config import SASRecConfig
from pipelines.presets import PRESETS

PAPER = PRESETS["paper"]
SASREC = SASRecConfig()
PARAMS = {
    "tiger_size": Param("paper", enum=list(PRESETS), description="train-tiger --size (pipelines/presets.py)"),
    "tiger_epochs": Param(PAPER.tiger_train.epochs, type="integer"),
    "tiger_max_minutes": Param(PAPER.tiger_train.max_minutes, type="number", description="TIGER's wall-clock budget"),
    "sasrec_max_minutes": Param(SASREC.max_minutes, type="number",
                                description="SASRec's budget per dropout candidate"),
    "sasrec_max_epochs": Param(SASREC.max_epochs, type="integer"),
    "twin_epochs": Param(PAPER.twin_epochs, type="integer"),
    # one depth for the ranker's fusion and tonight's union: the weights are chosen for unions of this depth
    "rerank_depth": Param(PAPER.rerank.depth, type="integer", description="candidates per retriever"),
    "final_k": Param(PAPER.rerank.final_k, type="integer", description="list length after the ranker"),
}
UPSTREAM = ["gold.semantic_ids", "gold.user_clusters", "gold.item_embeddings", "silver.events"]
# each training task's timeout leaves room above its default budget: selection ends at the budget, the refit
# on every event takes at most as long again, plus an hour
TIGER_TIMEOUT = dt.timedelta(minutes=2 * (PAPER.tiger_train.max_minutes or 120) + 60)
SASREC_TIMEOUT = dt.timedelta(minutes=(SASREC.max_minutes or 15) * (len(SASREC.dropout_grid) + 1) + 60)


@dag(schedule=[table_asset("gold.semantic_ids"), table_asset("gold.user_clusters")], **dag_args(**PARAMS))
def nightly_candidates():
    tiger = torch_job("train_tiger", "train_tiger", [
        "--size", "{{ params.tiger_size }}", "--epochs", "{{ params.tiger_epochs }}",
        "--max-minutes", "{{ params.tiger_max_minutes }}", "--warm-start", "--refit", "--candidate"],
        execution_timeout=TIGER_TIMEOUT)
    sasrec = torch_job("train_sasrec", "train_sasrec", [
        "--max-minutes", "{{ params.sasrec_max_minutes }}", "--max-epochs", "{{ params.sasrec_max_epochs }}",
        "--refit", "--candidate"], execution_timeout=SASREC_TIMEOUT)
    gates = [torch_job(f"gate_{name}", "model_registry", ["gate", name]) for name in ("tiger", "sasrec")]
    popularity = python_job("train_popularity", "train_popularity", [])
    twin = torch_job("train_twin", "train_twin",
                     ["--epochs", "{{ params.twin_epochs }}", "--rerank-depth", "{{ params.rerank_depth }}"])
    generate = spark_job("generate_candidates", "generate_candidates",
                         ["--top-k", "{{ params.rerank_depth }}", "--final-k", "{{ params.final_k }}"],
                         queue=GPU_QUEUE, outlets=[table_asset("gold.candidates")])
    evaluate = spark_job("evaluate", "evaluate", ["--plot-dir", "plots"])
    check = upstream_check(UPSTREAM)
    check >> tiger >> gates[0]
    check >> sasrec >> gates[1]
    check >> popularity
    [gates[0], gates[1], popularity] >> twin >> generate >> evaluate


nightly_candidates()
