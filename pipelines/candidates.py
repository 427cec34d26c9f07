"""Tonight's candidates: every retriever's top-K per user, their union ordered by the TWIN-V2 ranker's
fusion (pipelines/ranking/nightly.py) -> gold.candidates, one atomic overwrite of the run_date partition
(a rerun of a date replaces it; never duplicates). Each row says which retrievers found the item, with
the rank and score each gave it, the ranker's logit, the fused score and every model version.

Two engines write the same rows through the same `score_users`:

- `spark` (the default): each user's events (and clusters) are gathered into one row by user in
  Spark, the users are spread over the executors' Python workers, and each worker loads the
  models once and scores its users: the retrievers, then the ranker, on the task's GPU when Spark
  gave it one. The driver only pins what every worker reads (model versions, table versions),
  so it never holds the events; the rows go to Delta in one commit.
- `local`: every user in this process, for debugging.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.examples import (
    CROSS_FEATURES,
    item_tokens,
    user_clusters,
    with_recent_events,
)
from pipelines.ranking.fusion import Fusion
from pipelines.ranking.nightly import (
    FALLBACK,
    UNION_WIDTH,
    NightlyLists,
    NightlyModels,
    nightly_lists,
)
from pipelines.ranking.serving import load_ranker, resolve_ranker
from pipelines.retrieval.inputs import item_vectors_by_row
from pipelines.retrieval.registry import DEFAULT_RETRIEVERS, retriever_spec
from pipelines.retrieval.retriever import ServingItems
from pipelines.retrieval.sequences import ItemIndex, serving_histories
from pipelines.retrieval.serving import TigerRetriever, resolve_tiger, with_cold_share
from pipelines.splits import SEQUENCE_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

EVENT_COLUMNS = SEQUENCE_COLUMNS
CLUSTER_COLUMNS = ("user_id", "cluster_id", "size", "representative_item_id", *CROSS_FEATURES)
Engine = Literal["spark", "local"]


@dataclass(frozen=True)
class CandidatesConfig:
    run_date: dt.date
    # Each retriever's list per user. With the ranker on, keep it at the depth the ranker's fusion was chosen
    # for (its card's `fusion.depth`, RerankConfig.depth by default): the weights are right for that union.
    top_k: int = RerankConfig.depth
    retrievers: tuple[str, ...] = DEFAULT_RETRIEVERS
    versions: tuple[tuple[str, str], ...] = ()  # retriever -> version; default: the served ones
    fallback: bool = True  # popularity for users with no usable history (when a popularity model exists)
    exclude_history: bool = True
    device: str | None = None  # None: the Spark task's GPU, else CUDA when present, else CPU
    rerank: bool = True  # the TWIN-V2 ranker's fusion orders the union; off: the retrievers' ranks alone
    final_k: int = RerankConfig.final_k
    ranker_version: str | None = None  # None: the served one
    engine: Engine = "spark"
    tasks: int | None = None  # Spark tasks the users are spread over; None: 4 per core of the session
    cold_share: float | None = None  # TIGER's places for items without events; None: models.cold_start's

    @property
    def run_id(self) -> str:
        return f"generate-candidates-{self.run_date.isoformat()}"


@dataclass(frozen=True)
class ServingPlan:
    """What every worker loads, pinned by the driver so that all of them score with the same models and
    the same table versions (a table committed to mid-run changes nothing). Small and picklable."""

    lakehouse: LakehouseConfig
    store: ArtifactStore
    config: CandidatesConfig
    rqvae_version: str
    retriever_versions: tuple[tuple[str, str], ...]  # the union's members (and the fallback), pinned
    ranker_version: str | None
    versions: tuple[tuple[str, int], ...]  # catalog table -> version

    def version_of(self, table: str) -> int:
        return dict(self.versions)[table]

    @property
    def model_version(self) -> str:
        """Every union member's version, as gold.candidates records it: tiger=...,sasrec=..."""
        return ",".join(f"{n}={v}" for n, v in self.retriever_versions if n != FALLBACK)


@dataclass(frozen=True)
class ServingModels:
    index: ItemIndex
    nightly: NightlyModels


def candidate_rows(index: ItemIndex, users: np.ndarray, lists: NightlyLists, final_k: int, run_date: dt.date,
                   model_version: str, ranker_version: str | None) -> pd.DataFrame:
    """One row per (user, rank) of each user's first `final_k` union candidates in the fusion's order."""
    union = lists.union
    order = lists.order[:, :final_k]
    items = np.take_along_axis(union.items, order, 1)
    user_rows, rank = np.nonzero(items >= 0)
    slots = order[user_rows, rank]
    found = union.ranks[user_rows, slots] > 0  # [rows, R]
    names = np.asarray(union.retrievers, dtype=object)
    chosen = items[user_rows, rank]
    ranker = None if lists.logits is None else lists.logits[user_rows, slots].astype(np.float64)
    return pd.DataFrame({
        "run_date": run_date,
        "user_id": users[user_rows],
        "rank": (rank + 1).astype(np.int32),
        "item_id": index.item_ids[chosen],
        "semantic_id": index.semantic_ids[chosen],
        "score": lists.fused[user_rows, slots].astype(np.float64),
        "retrievers": [list(names[f]) for f in found],
        "retriever_ranks": [r[f].astype(np.int32).tolist() for r, f in zip(union.ranks[user_rows, slots], found,
                                                                           strict=True)],
        "retriever_scores": [s[f].astype(np.float64).tolist() for s, f in zip(union.scores[user_rows, slots], found,
                                                                              strict=True)],
        "ranker_score": ranker,
        "source": ["+".join(names[f]) for f in found],
        "model_version": model_version,
        "ranker_version": ranker_version,
    }, columns=list(GOLD_CANDIDATES.schema.names))


def score_users(models: ServingModels, plan: ServingPlan, events: pd.DataFrame, clusters: pd.DataFrame | None,
                progress: bool = True) -> pd.DataFrame:
    """Candidate rows of the users in `events` (all their events; `clusters`: all their clusters). Each user
    is scored alone, so any grouping of the users gives the same rows."""
    config = plan.config
    serving = serving_histories(events, models.index, UNION_WIDTH)
    users = serving.examples.users
    keys = None
    ranker = models.nightly.ranker
    if ranker is not None:
        assert clusters is not None
        keys = with_recent_events(user_clusters(clusters, models.index), users, serving.examples.histories,
                                  ranker.config.recent_events)
    seen = serving.seen if config.exclude_history else None
    lists = nightly_lists(models.nightly, serving.examples, seen, keys, depth=config.top_k)
    return candidate_rows(models.index, users, lists, config.final_k, config.run_date, plan.model_version,
                          plan.ranker_version)


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
    pinned = dict(config.versions)
    retrievers: dict[str, str] = {}
    for name in config.retrievers:
        retriever_spec(name)  # an unknown name fails here, naming the registered ones
        if name == "tiger":
            retrievers[name], card = resolve_tiger(store, pinned.get(name), rqvae_versions[0])
            if card["config"]["model"].get("dense_head"):  # it scores items by their content vectors
                versions[GOLD_ITEM_EMBEDDINGS.name] = _version(catalog, GOLD_ITEM_EMBEDDINGS.name)
        else:
            retrievers[name] = store.resolve(name, pinned.get(name))
    if config.fallback and FALLBACK not in retrievers:
        if store.latest_version(FALLBACK) is not None or FALLBACK in pinned:
            retrievers[FALLBACK] = store.resolve(FALLBACK, pinned.get(FALLBACK))
        else:
            log.warning("no popularity model: users with no usable history get no fallback list (train-popularity)")
    ranker_version = None
    if config.rerank:
        ranker_version, card = resolve_ranker(store, config.ranker_version, rqvae_versions[0])
        fusion = card.get("fusion") or {}
        if fusion.get("depth") and fusion["depth"] != config.top_k:
            log.warning("ranker %s chose its fusion on unions of top-%d lists, but tonight's are top-%d: pass "
                        "--top-k %d (or retrain the ranker with --rerank-depth %d)", ranker_version, fusion["depth"],
                        config.top_k, fusion["depth"], config.top_k)
        trained_on = card.get("retrievers") or {}
        moved = {n: (v, retrievers.get(n)) for n, v in trained_on.items() if retrievers.get(n) != v}
        if moved:
            log.warning("ranker %s chose its fusion with retrievers %s; tonight serves %s", ranker_version,
                        trained_on, {n: retrievers.get(n) for n in trained_on})
        for table in (GOLD_USER_CLUSTERS.name, GOLD_ITEM_EMBEDDINGS.name):
            versions[table] = _version(catalog, table)
    # credentials travel with the plan: executors on other machines may lack the driver's AWS_* variables
    return ServingPlan(catalog.config.for_executors(), store.for_executors(), config, rqvae_versions[0],
                       tuple(retrievers.items()), ranker_version,
                       tuple(sorted(versions.items())))


def _version(catalog: Catalog, table: str) -> int:
    version = table_version(catalog.location(table), catalog.storage_options or None)
    if version is None:
        raise UpstreamTableError(f"{table}: no table at {catalog.location(table)}; run the job that writes it")
    return version


def load_serving_models(plan: ServingPlan, device: str | None) -> ServingModels:
    """Every model the plan pinned, against the pinned semantic IDs (no events read: the retrievers load
    from their artifacts, which carry their own item rows)."""
    catalog = Catalog(plan.lakehouse)
    ids, _ = read_table_arrow(catalog, GOLD_SEMANTIC_IDS.name, columns=["item_id", "codes", "semantic_id", "rqvae_version"],
                              version=plan.version_of(GOLD_SEMANTIC_IDS.name))
    index = ItemIndex.from_semantic_ids(ids.to_pandas())
    pinned = dict(plan.versions)
    vectors = (item_vectors_by_row(catalog, index, pinned[GOLD_ITEM_EMBEDDINGS.name])
               if GOLD_ITEM_EMBEDDINGS.name in pinned else None)
    inputs = ServingItems(index, plan.rqvae_version, vectors)
    loaded = {name: retriever_spec(name).load(plan.store, version, inputs, device, True)  # refit weights
              for name, version in plan.retriever_versions}
    tiger = loaded.get("tiger")
    if isinstance(tiger, TigerRetriever):
        loaded["tiger"] = with_cold_share(tiger, plan.config.cold_share)
    fallback = loaded.pop(FALLBACK, None)
    if plan.ranker_version is None:
        names = tuple(loaded)
        rank_only = Fusion(names, (1.0,) * len(names), 0.0, plan.config.top_k)  # reciprocal-rank-style votes
        return ServingModels(index, NightlyModels(loaded, rank_only, fallback=fallback))
    ranker, _, fusion = load_ranker(plan.store, plan.ranker_version, plan.rqvae_version, device)
    if vectors is None:
        vectors = item_vectors_by_row(catalog, index, plan.version_of(GOLD_ITEM_EMBEDDINGS.name))
    return ServingModels(index, NightlyModels(loaded, fusion, ranker, vectors, item_tokens(index), fallback))


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
        log.info("worker loaded %s / ranker %s on %s in %.1fs", plan.model_version, plan.ranker_version,
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
                custom_metadata={"run_id": config.run_id, "model_version": plan.model_version})
    seconds = time.perf_counter() - started
    # counted from what was committed (and the pinned events), so both engines report the same way
    written = read_table(spark, catalog, GOLD_CANDIDATES.name).where(F.col("run_date") == F.lit(config.run_date))
    totals = written.agg(F.count(F.lit(1)).alias("rows"),
                         F.sum((F.col("rank") == config.final_k).cast("long")).alias("full_lists")).collect()[0]
    users = (read_table(spark, catalog, SILVER_EVENTS.name, version=plan.version_of(SILVER_EVENTS.name))
             .select("user_id").distinct().count())
    metrics = {
        "users": float(users), "candidates": float(totals["rows"]),
        "users_with_fewer_than_k": float(users - (totals["full_lists"] or 0)),
        "reranked": float(config.rerank),
        "generate_seconds": seconds, "users_per_s": users / seconds if seconds else 0.0,
    }
    write_metrics(spark, catalog, "generate_candidates", config.run_id, metrics, logical_time(config.run_date))
    log.info("wrote %d candidates for %d users (%s, ranker %s, %s engine, %.1f users/s)", totals["rows"],
             users, plan.model_version, plan.ranker_version, config.engine, metrics["users_per_s"])
    return metrics
