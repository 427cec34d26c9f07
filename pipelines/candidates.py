"""Tonight's candidates: TIGER's top-K per user, reranked by the TWIN-V2 ranker into the final list
(switchable off) -> gold.candidates, one atomic overwrite of the run_date partition (a rerun of a
date replaces it; never duplicates). Rows keep both scores and both model versions.

Two engines write the same rows through the same `score_users`:

- `spark` (the default): each user's events (and clusters) are gathered into one row by user in
  Spark, the users are spread over the executors' Python workers, and each worker loads the
  models once and scores its users: beam search, then the ranker, on the task's GPU when Spark
  gave it one. The driver only pins what every worker reads (model versions, table versions),
  so it never holds the events; the rows go to Delta in one commit.
- `local`: every user in this process, for debugging.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import (
    GOLD_CANDIDATES,
    GOLD_ITEM_EMBEDDINGS,
    GOLD_SEMANTIC_IDS,
    GOLD_USER_CLUSTERS,
    SILVER_EVENTS,
    Catalog,
)
from pipelines.lakehouse.config import LakehouseConfig, logical_time
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.ops import write_metrics
from pipelines.lakehouse.table_io import read_table, read_table_arrow, write_table
from pipelines.ranking.blend import blend_of, blended_score
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.examples import (
    CROSS_FEATURES,
    item_tokens,
    user_clusters,
    with_recent_events,
)
from pipelines.ranking.serving import RankerFeatures, load_ranker, rerank, resolve_ranker
from pipelines.retrieval.inputs import item_vectors_by_row
from pipelines.retrieval.sequences import ItemIndex, serving_histories
from pipelines.retrieval.serving import load_tiger, resolve_tiger, tiger_top_k
from pipelines.splits import SEQUENCE_COLUMNS, SplitConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

EVENT_COLUMNS = SEQUENCE_COLUMNS
CLUSTER_COLUMNS = ("user_id", "cluster_id", "size", "representative_item_id", *CROSS_FEATURES)
Engine = Literal["spark", "local"]


@dataclass(frozen=True)
class CandidatesConfig:
    run_date: dt.date
    # TIGER's list per user. With the ranker on, keep it at the depth the ranker's blend was chosen for
    # (its card's `blend.depth`, RerankConfig.depth by default): the weight is only right for that list.
    top_k: int = RerankConfig.depth
    beam_width: int | None = None  # None: top_k
    tiger_version: str | None = None  # None: the latest
    exclude_history: bool = True
    batch_size: int | None = None  # users per beam-search batch; None: what memory holds (256 on CPU)
    device: str | None = None  # None: the Spark task's GPU, else CUDA when present, else CPU
    rerank: bool = True  # TWIN-V2 reorders TIGER's top_k and keeps final_k
    final_k: int = RerankConfig.final_k
    ranker_version: str | None = None  # None: the latest
    engine: Engine = "spark"
    tasks: int | None = None  # Spark tasks the users are spread over; None: 4 per core of the session

    @property
    def run_id(self) -> str:
        return f"generate-candidates-{self.run_date.isoformat()}"

    @property
    def list_length(self) -> int:
        return self.final_k if self.rerank else self.top_k


@dataclass(frozen=True)
class ServingPlan:
    """What every worker loads, pinned by the driver so that all of them score with the same models and
    the same table versions (a table committed to mid-run changes nothing). Small and picklable."""

    lakehouse: LakehouseConfig
    store: ArtifactStore
    config: CandidatesConfig
    rqvae_version: str
    tiger_version: str
    ranker_version: str | None
    versions: tuple[tuple[str, int], ...]  # catalog table -> version

    def version_of(self, table: str) -> int:
        return dict(self.versions)[table]


@dataclass(frozen=True)
class ServingModels:
    index: ItemIndex
    tiger: Any
    ranker: Any | None
    blend_weight: float
    vectors: np.ndarray | None  # item vectors by row, for the ranker
    tokens: np.ndarray | None  # the ranker's item tokens by row (`item_tokens`)


def candidate_rows(index: ItemIndex, users: np.ndarray, items: np.ndarray, retrieval_scores: np.ndarray,
                   run_date: dt.date, version: str, ranker_scores: np.ndarray | None = None,
                   ranker_version: str | None = None, blend_weight: float = math.inf) -> pd.DataFrame:
    """One row per (user, rank) for the valid beams (users with short catalogs may get fewer than K);
    `score` is what the rank follows: TIGER's, or TIGER's + blend_weight * the ranker's."""
    valid = items >= 0
    user_rows, rank = np.nonzero(valid)
    chosen = items[valid]
    final = retrieval_scores if ranker_scores is None else blended_score(retrieval_scores, ranker_scores, blend_weight)
    return pd.DataFrame({
        "run_date": run_date,
        "user_id": users[user_rows],
        "rank": (rank + 1).astype(np.int32),
        "item_id": index.item_ids[chosen],
        "semantic_id": index.semantic_ids[chosen],
        "score": final[valid].astype(np.float64),
        "retrieval_score": retrieval_scores[valid].astype(np.float64),
        "ranker_score": None if ranker_scores is None else ranker_scores[valid].astype(np.float64),
        "source": "tiger" if ranker_scores is None else "tiger+twin",
        "model_version": version,
        "ranker_version": ranker_version,
    }, columns=list(GOLD_CANDIDATES.schema.names))


def score_users(models: ServingModels, plan: ServingPlan, events: pd.DataFrame, clusters: pd.DataFrame | None,
                progress: bool = True) -> pd.DataFrame:
    """Candidate rows of the users in `events` (all their events; `clusters`: all their clusters). Each user
    is scored alone, so any grouping of the users gives the same rows."""
    config = plan.config
    serving = serving_histories(events, models.index, SplitConfig().max_history)
    users = serving.examples.users
    result = tiger_top_k(models.tiger, models.index, serving.examples, config.top_k, config.beam_width,
                         config.exclude_history, config.batch_size, progress=progress, exclude_items=serving.seen)
    items, scores = result.items.numpy(), result.scores.numpy().astype(np.float64)
    if models.ranker is None:
        return candidate_rows(models.index, users, items, scores, config.run_date, plan.tiger_version)
    assert models.vectors is not None and models.tokens is not None and clusters is not None
    keys = with_recent_events(user_clusters(clusters, models.index), users, serving.examples.histories,
                              models.ranker.config.recent_events)
    features = RankerFeatures(models.vectors, models.tokens, keys)
    items, ranker_scores, order = rerank(models.ranker, features, users, items, config.final_k,
                                         retrieval_scores=scores, blend_weight=models.blend_weight)
    scores = np.take_along_axis(scores, order, 1)
    return candidate_rows(models.index, users, items, scores, config.run_date, plan.tiger_version, ranker_scores,
                          plan.ranker_version, models.blend_weight)


def plan_serving(catalog: Catalog, store: ArtifactStore, config: CandidatesConfig) -> ServingPlan:
    """Resolve the models and pin the table versions tonight's run reads; fail clearly on a mismatch."""
    versions = {SILVER_EVENTS.name: _version(catalog, SILVER_EVENTS.name),
                GOLD_SEMANTIC_IDS.name: _version(catalog, GOLD_SEMANTIC_IDS.name)}
    ids, _ = read_table_arrow(catalog, GOLD_SEMANTIC_IDS.name, columns=["rqvae_version"],
                              version=versions[GOLD_SEMANTIC_IDS.name])
    rqvae_versions = pc.unique(ids.column("rqvae_version")).to_pylist()
    if len(rqvae_versions) != 1:
        raise UpstreamTableError(f"{GOLD_SEMANTIC_IDS.name} holds RQ-VAE versions {rqvae_versions} (need exactly "
                                 "one): run train-rqvae and assign-semantic-ids")
    tiger_version, _ = resolve_tiger(store, config.tiger_version, rqvae_versions[0])
    ranker_version = None
    if config.rerank:
        ranker_version, card = resolve_ranker(store, config.ranker_version, rqvae_versions[0])
        blend = blend_of(card)
        if blend.depth != config.top_k and not math.isinf(blend.weight):
            log.warning("ranker %s chose its blend weight on TIGER lists of %d, but tonight's are %d long: "
                        "pass --top-k %d (or retrain the ranker with --rerank-depth %d)", ranker_version,
                        blend.depth, config.top_k, blend.depth, config.top_k)
        for table in (GOLD_USER_CLUSTERS.name, GOLD_ITEM_EMBEDDINGS.name):
            versions[table] = _version(catalog, table)
    return ServingPlan(catalog.config, store, config, rqvae_versions[0], tiger_version, ranker_version,
                       tuple(sorted(versions.items())))


def _version(catalog: Catalog, table: str) -> int:
    version = table_version(catalog.location(table), catalog.storage_options or None)
    if version is None:
        raise UpstreamTableError(f"{table}: no table at {catalog.location(table)}; run the job that writes it")
    return version


def load_serving_models(plan: ServingPlan, device: str | None) -> ServingModels:
    catalog = Catalog(plan.lakehouse)
    ids, _ = read_table_arrow(catalog, GOLD_SEMANTIC_IDS.name, columns=["item_id", "codes", "semantic_id"],
                              version=plan.version_of(GOLD_SEMANTIC_IDS.name))
    index = ItemIndex.from_semantic_ids(ids.to_pandas())
    tiger, _, _ = load_tiger(plan.store, plan.tiger_version, plan.rqvae_version, device)
    if plan.ranker_version is None:
        return ServingModels(index, tiger, None, math.inf, None, None)
    ranker, _, blend = load_ranker(plan.store, plan.ranker_version, plan.rqvae_version, device)
    vectors = item_vectors_by_row(catalog, index, plan.version_of(GOLD_ITEM_EMBEDDINGS.name))
    return ServingModels(index, tiger, ranker, blend.weight, vectors, item_tokens(index))


# ---- the Spark engine: runs in the executors' Python workers ------------------------------------

_WORKER_MODELS: dict[tuple[ServingPlan, str | None], ServingModels] = {}


def _worker_models(plan: ServingPlan) -> ServingModels:
    """The plan's models, loaded once per Python worker (Spark reuses workers across tasks), on the GPU
    Spark assigned to this task when it assigned one; torch gets the task's cores."""
    from pyspark import TaskContext

    from models.device import set_cpu_threads

    context = TaskContext.get()
    gpus = context.resources().get("gpu") if context else None
    device = plan.config.device or (f"cuda:{gpus.addresses[0]}" if gpus and gpus.addresses else None)
    set_cpu_threads(context.cpus() if context else 1)
    key = (plan, device)
    if key not in _WORKER_MODELS:
        _WORKER_MODELS.clear()  # one night's models at a time
        started = time.perf_counter()
        _WORKER_MODELS[key] = load_serving_models(plan, device)
        log.info("worker loaded TIGER %s / ranker %s on %s in %.1fs", plan.tiger_version, plan.ranker_version,
                 device or "the default device", time.perf_counter() - started)
    return _WORKER_MODELS[key]


def _score_partition(plan: ServingPlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: a partition's users (one row each, events and clusters as lists) -> candidate rows."""
    collected = list(batches)
    users = pa.Table.from_batches(collected) if collected else None
    if users is None or users.num_rows == 0:
        return
    events = _unnest(users, "events", EVENT_COLUMNS[1:])
    clusters = _unnest(users, "clusters", CLUSTER_COLUMNS[1:]) if "clusters" in users.column_names else None
    rows = score_users(_worker_models(plan), plan, events, clusters, progress=False)
    yield from pa.Table.from_pandas(rows, schema=GOLD_CANDIDATES.schema, preserve_index=False).to_batches()


def _unnest(users: pa.Table, column: str, fields: tuple[str, ...]) -> pd.DataFrame:
    """A list<struct> column -> one pandas row per element, with its user_id."""
    lists = users.column(column).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
    flat = pc.list_flatten(lists)
    frame = pd.DataFrame({name: flat.field(name).to_numpy(zero_copy_only=False) for name in fields})
    frame.insert(0, "user_id", np.repeat(users.column("user_id").to_numpy(zero_copy_only=False), lengths))
    return frame


def _spark_rows(spark: SparkSession, catalog: Catalog, plan: ServingPlan) -> DataFrame:
    from pyspark.sql import functions as F

    events = read_table(spark, catalog, SILVER_EVENTS.name, version=plan.version_of(SILVER_EVENTS.name))
    users = events.groupBy("user_id").agg(F.collect_list(F.struct(*EVENT_COLUMNS[1:])).alias("events"))
    if plan.ranker_version is not None:
        clusters = read_table(spark, catalog, GOLD_USER_CLUSTERS.name,
                              version=plan.version_of(GOLD_USER_CLUSTERS.name))
        by_user = clusters.groupBy("user_id").agg(F.collect_list(F.struct(*CLUSTER_COLUMNS[1:])).alias("clusters"))
        users = users.join(by_user, "user_id", "left")
    tasks = plan.config.tasks or 4 * spark.sparkContext.defaultParallelism
    # round-robin: equal users per task (hashing by user could leave a task with most of the heavy users)
    return users.repartition(tasks).mapInArrow(functools.partial(_score_partition, plan),
                                               GOLD_CANDIDATES.spark_schema())


def _local_rows(spark: SparkSession, catalog: Catalog, plan: ServingPlan) -> DataFrame:
    events, _ = read_table_arrow(catalog, SILVER_EVENTS.name, columns=list(EVENT_COLUMNS),
                                 version=plan.version_of(SILVER_EVENTS.name))
    clusters = None
    if plan.ranker_version is not None:
        table, _ = read_table_arrow(catalog, GOLD_USER_CLUSTERS.name, columns=list(CLUSTER_COLUMNS),
                                    version=plan.version_of(GOLD_USER_CLUSTERS.name))
        clusters = table.to_pandas()
    models = load_serving_models(plan, plan.config.device)
    rows = score_users(models, plan, events.to_pandas(), clusters)
    return spark.createDataFrame(rows, GOLD_CANDIDATES.spark_schema())


def run_generate_candidates(
    spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: CandidatesConfig
) -> dict[str, float]:
    from pyspark.sql import functions as F

    plan = plan_serving(catalog, store, config)
    started = time.perf_counter()
    rows = (_spark_rows if config.engine == "spark" else _local_rows)(spark, catalog, plan)
    write_table(spark, catalog, GOLD_CANDIDATES.name, rows, mode="overwrite",
                replace_partitions=[{"run_date": config.run_date}],
                custom_metadata={"run_id": config.run_id, "model_version": plan.tiger_version})
    seconds = time.perf_counter() - started
    # counted from what was committed (and the pinned events), so both engines report the same way
    written = read_table(spark, catalog, GOLD_CANDIDATES.name).where(F.col("run_date") == F.lit(config.run_date))
    totals = written.agg(F.count(F.lit(1)).alias("rows"),
                         F.sum((F.col("rank") == config.list_length).cast("long")).alias("full_lists")).collect()[0]
    users = (read_table(spark, catalog, SILVER_EVENTS.name, version=plan.version_of(SILVER_EVENTS.name))
             .select("user_id").distinct().count())
    metrics = {
        "users": float(users), "candidates": float(totals["rows"]),
        "users_with_fewer_than_k": float(users - (totals["full_lists"] or 0)),
        "reranked": float(config.rerank),
        "generate_seconds": seconds, "users_per_s": users / seconds if seconds else 0.0,
    }
    write_metrics(spark, catalog, "generate_candidates", config.run_id, metrics, logical_time(config.run_date))
    log.info("wrote %d candidates for %d users (TIGER %s, ranker %s, %s engine, %.1f users/s)", totals["rows"],
             users, plan.tiger_version, plan.ranker_version, config.engine, metrics["users_per_s"])
    return metrics
