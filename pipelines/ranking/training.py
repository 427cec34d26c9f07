"""The TWIN-V2 ranker's training job (torch; reads Delta with delta-rs, no Spark).

Positives: the events after each training cut (pipelines/ranking/cuts.py:
clusters of the history before the cut, built as cluster-behaviors builds
them) and the validation event of the users outside the calibration share,
whose keys are gold.user_clusters. The test event is kept for evaluation.
Every key set also holds the user's last raw events (TWIN-V2's short-term
sequence). Negatives: catalog items the user never had, part of them from
the union of the retrievers' top candidates for the same history (hard
negatives from every retriever). The nightly list orders that union by a
fusion of the ranker's logit and each retriever's rank (fusion.py), chosen
and gated on validation users held out of training, on unions of the depth
the nightly job retrieves (`RerankConfig.depth` per retriever).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.config import TwinConfig, TwinTrainConfig
from models.examples import Examples
from models.seen import Seen
from pipelines.behavior.config import ClusteringConfig
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_USER_CLUSTERS, SILVER_EVENTS, Catalog
from pipelines.lakehouse.table_io import read_table_arrow
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.cuts import CutExamples, training_cuts
from pipelines.ranking.examples import (
    Pairs,
    UserClusters,
    labelled_pairs,
    merge_keys,
    with_recent_events,
)
from pipelines.ranking.fusion import RANKER_ONLY, Fusion, calibration_users, choose_fusion
from pipelines.ranking.inputs import RankerInputs, load_ranker_inputs
from pipelines.ranking.nightly import UNION_WIDTH, load_retrievers, retrieve_union
from pipelines.ranking.serving import (
    MODEL,
    WEIGHTS_FILE,
    RankerFeatures,
    evaluate_ranker,
    ranker_logits,
)
from pipelines.ranking.union import CandidateUnion
from pipelines.retrieval.inputs import RetrievalInputs, sequences_at_width
from pipelines.retrieval.registry import DEFAULT_RETRIEVERS
from pipelines.retrieval.retriever import Retriever
from pipelines.retrieval.sequences import SequenceData
from pipelines.splits import SEQUENCE_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainTwinJobConfig:
    run_date: dt.date
    model: TwinConfig = field(default_factory=TwinConfig)
    train: TwinTrainConfig = field(default_factory=TwinTrainConfig)
    version: str | None = None
    hard_negatives: bool = True  # from the retrievers' candidates when trained retrievers exist
    # The retrievers whose union the ranker orders, at these versions (default: the served ones).
    retrievers: tuple[str, ...] = DEFAULT_RETRIEVERS
    retriever_versions: tuple[tuple[str, str], ...] = ()
    # The union is each retriever's top `rerank.depth`; the fusion is chosen on `rerank.calibration_share` of
    # the validation users, whom the ranker does not train on.
    rerank: RerankConfig = field(default_factory=RerankConfig)
    # How training cuts are clustered: the settings cluster-behaviors built gold.user_clusters with.
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    processes: int = 1  # data-parallel training processes through TorchDistributor (pipelines/training_processes.py)


def calibrate_fusion(model, inputs: RankerInputs, examples: Examples, union: CandidateUnion, depth: int,
                     seed: int) -> Fusion:
    """The fusion of the ranker's logit and the retrievers' ranks for `examples` (users the ranker did not
    train on), chosen on half of them and gated on the other half (`choose_fusion`)."""
    logits = ranker_logits(model, RankerFeatures.of(inputs, examples, model.config.recent_events), examples.users,
                           union.items)
    fusion = choose_fusion(union, logits, examples.targets, examples.users, depth, seed)
    log.info("fusion on %d calibration users: retriever weights %s, ranker weight %s; gate %s", len(examples),
             dict(zip(fusion.retrievers, fusion.retriever_weights, strict=True)), fusion.ranker_weight, fusion.gate)
    return fusion


@dataclass(frozen=True)
class UnionSource:
    """The loaded retrievers and the wide sequences they read (same split, same users as the ranker's)."""

    retrievers: dict[str, Retriever]
    sequences: SequenceData

    def union(self, examples: Examples, seen: Seen | None, depth: int) -> CandidateUnion:
        return retrieve_union(self.retrievers, examples, depth, seen)

    def valid_union(self, depth: int) -> CandidateUnion:
        return self.union(self.sequences.valid, self.sequences.seen("valid"), depth)


def union_source(catalog: Catalog, store: ArtifactStore, inputs: RetrievalInputs, names: Sequence[str],
                 versions: Mapping[str, str] | None = None) -> UnionSource | None:
    """The trained retrievers among `names` (None when there is none yet: the ranker then trains on catalog
    negatives and ranks by its logit alone)."""
    retrievers = load_retrievers(store, names, inputs, versions, missing_ok=True)
    if not retrievers:
        return None
    sequences = sequences_at_width(catalog, inputs, UNION_WIDTH)
    if not np.array_equal(sequences.valid.targets, inputs.sequences.valid.targets):
        raise AssertionError("the wide sequences' validation users differ from the ranker's")  # same split: a bug
    return UnionSource(retrievers, sequences)


def load_training_cuts(catalog: Catalog, inputs: RankerInputs, train: TwinTrainConfig,
                       clustering: ClusteringConfig = ClusteringConfig()) -> CutExamples:
    """The training cuts of every user, from silver.events at the version the inputs were read at."""
    events, _ = read_table_arrow(catalog, SILVER_EVENTS.name,
                                 columns=[*SEQUENCE_COLUMNS, "completion", "rating"],
                                 version=inputs.table_versions[SILVER_EVENTS.name])
    started = time.perf_counter()
    cuts = training_cuts(events.to_pandas(), inputs.vectors, inputs.retrieval.index, clustering,
                         train.cuts_per_user, train.positives_per_cut, inputs.retrieval.sequences.valid.histories.shape[1])
    log.info("%d training cuts of %d users, %d positives, clustered in %.1f s", len(cuts), len(set(cuts.users)),
             sum(len(p) for p in cuts.positives), time.perf_counter() - started)
    return cuts


def training_pairs(inputs: RankerInputs, train: TwinTrainConfig, recent: int, rows: np.ndarray,
                   hard: np.ndarray | None, cuts: CutExamples | None, cut_hard: np.ndarray | None,
                   clusters: UserClusters | None = None) -> tuple[Pairs, UserClusters]:
    """Labelled pairs and the keys they index: the validation events of `rows` (keys: `clusters`, default the
    inputs', + recent events) and every positive after every cut (keys: the cut's clusters + recent events)."""
    sequences = inputs.retrieval.sequences
    valid = sequences.valid.take(rows)
    keys = [with_recent_events(clusters or inputs.clusters, valid.users, valid.histories, recent)]
    users, positives, hard_lists = list(valid.users), list(valid.targets), list(hard) if hard is not None else None
    if cuts is not None and len(cuts):
        keys.append(with_recent_events(cuts.keys, cuts.keys.users, cuts.histories, recent))
        repeat = np.array([len(p) for p in cuts.positives])
        users += list(np.repeat(cuts.keys.users, repeat))
        positives += [int(i) for p in cuts.positives for i in p]
        if hard_lists is not None and cut_hard is not None:
            hard_lists += [cut_hard[k] for k in np.repeat(np.arange(len(cuts)), repeat)]
    owner = dict(zip(cuts.keys.users, cuts.users, strict=True)) if cuts is not None else {}  # cut key -> user
    seen_by_user = dict(zip(sequences.serve.users, sequences.serve_seen, strict=True))
    seen = [seen_by_user[owner.get(u, u)] for u in users]
    all_keys = merge_keys(*keys)
    pairs = labelled_pairs(np.asarray(users, dtype=object), np.asarray(positives, dtype=np.int64), seen, all_keys,
                           len(inputs.vectors), train.negatives, np.random.default_rng(train.seed),
                           hard=hard_lists, hard_share=train.hard_negative_share)
    return pairs, all_keys


def fit_ranker(inputs: RankerInputs, model_config: TwinConfig, train: TwinTrainConfig,
               hard: np.ndarray | None = None, clusters: UserClusters | None = None,
               rows: np.ndarray | None = None, cuts: CutExamples | None = None, cut_hard: np.ndarray | None = None,
               processes: int = 1):
    """Train on the validation events of `rows` (default all; `hard` aligns with them) and the training cuts;
    `clusters` overrides the inputs' (the raw-events ablation); in `processes` data-parallel processes."""
    from models.twin_training import train_twin
    from pipelines.training_processes import in_processes

    rows = np.arange(len(inputs.retrieval.sequences.valid)) if rows is None else rows
    pairs, keys = training_pairs(inputs, train, model_config.recent_events, rows, hard, cuts, cut_hard, clusters)
    log.info("ranker training pairs: %d (%d positives)", len(pairs.labels), int(pairs.labels.sum()))
    config = dataclasses.replace(model_config, item_dim=inputs.vectors.shape[1],
                                 codebook_size=max(model_config.codebook_size, int(inputs.retrieval.index.codes.max()) + 1))
    return in_processes(functools.partial(train_twin, config, train, inputs.vectors, inputs.tokens,
                                          pairs.user_positions, pairs.items, pairs.labels, *keys.arrays()),
                        processes, train.device)


def fit_ranker_and_fusion(inputs: RankerInputs, model_config: TwinConfig, train: TwinTrainConfig,
                          union: CandidateUnion | None, rerank: RerankConfig = RerankConfig(),
                          hard_negatives: bool = True, clusters: UserClusters | None = None,
                          cuts: CutExamples | None = None, cut_hard: np.ndarray | None = None, processes: int = 1):
    """(model, history, fusion): the ranker trained on the training cuts and the validation users outside the
    calibration share (the union's first `rerank.hard_negative_pool` candidates as hard negatives), the
    fusion chosen and gated on the others within the union of every validation user (`union`, aligned with
    the validation examples), at the depth it will serve. Without a union: every user trains and the
    logit ranks alone."""
    valid = inputs.retrieval.sequences.valid
    held = (calibration_users(valid.users, rerank.calibration_share, train.seed) if union is not None
            else np.zeros(len(valid), dtype=bool))
    if held.all():
        held[:] = False  # too few users to hold any out: train on all, rank by the logit
    train_rows = np.flatnonzero(~held)
    hard = union.items[train_rows, :rerank.hard_negative_pool] if union is not None and hard_negatives else None
    model, history = fit_ranker(inputs, model_config, train, hard, clusters, rows=train_rows, cuts=cuts,
                                cut_hard=cut_hard if hard_negatives else None, processes=processes)
    fusion = RANKER_ONLY
    if union is not None and held.any():
        view = inputs if clusters is None else dataclasses.replace(inputs, clusters=clusters)
        rows = np.flatnonzero(held)
        fusion = calibrate_fusion(model, view, valid.take(rows), union.take(rows), rerank.depth, train.seed)
    return model, history, fusion


def union_negatives_at_cuts(source: UnionSource, cuts: CutExamples, pool: int) -> np.ndarray:
    """The union's first `pool` candidates for the history before each cut (hard negatives)."""
    examples = Examples(cuts.users, cuts.histories, np.full(len(cuts), -1, dtype=np.int64))
    seen = [h[h >= 0] for h in cuts.histories]
    depth = max(1, -(-pool // max(len(source.retrievers), 1)))
    return source.union(examples, seen, depth).items[:, :pool]


def run_train_twin(catalog: Catalog, store: ArtifactStore, config: TrainTwinJobConfig) -> dict[str, object]:
    import torch

    inputs = load_ranker_inputs(catalog)
    valid = inputs.retrieval.sequences.valid
    if len(valid) == 0:
        raise UpstreamTableError("no user has 3+ events: nothing to train the ranker on")
    source = union_source(catalog, store, inputs.retrieval, config.retrievers, dict(config.retriever_versions))
    union = source.valid_union(config.rerank.depth) if source is not None else None
    started = time.perf_counter()
    cuts = load_training_cuts(catalog, inputs, config.train, config.clustering) if config.train.cuts_per_user else None
    cut_hard = (union_negatives_at_cuts(source, cuts, config.rerank.hard_negative_pool)
                if cuts is not None and source is not None and config.hard_negatives else None)
    model, history, fusion = fit_ranker_and_fusion(inputs, config.model, config.train, union,
                                                   config.rerank, config.hard_negatives, cuts=cuts, cut_hard=cut_hard,
                                                   processes=config.processes)
    seconds = time.perf_counter() - started
    metrics = evaluate_ranker(model, inputs, inputs.retrieval.sequences.test, config.train.negatives,
                              config.train.seed + 1)
    versions = inputs.table_versions
    version = config.version or (f"{config.run_date:%Y%m%d}-c{versions[GOLD_USER_CLUSTERS.name]}"
                                 f"-s{versions['gold.semantic_ids']}")
    directory = store.directory(MODEL, version)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, directory / WEIGHTS_FILE)
    card = {
        "config": {"model": dataclasses.asdict(model.config), "train": dataclasses.asdict(config.train)},
        "data": versions, "rqvae_version": inputs.retrieval.rqvae_version,
        "run_date": config.run_date.isoformat(), "weights": WEIGHTS_FILE, "processes": config.processes,
        "hard_negatives_from": sorted(source.retrievers) if source is not None and config.hard_negatives else [],
        "retrievers": {} if source is None else {n: r.version for n, r in source.retrievers.items()},
        "fusion": fusion.to_card(),
        "metrics": {"test_auc": metrics["auc"], "test_gauc": metrics["gauc"], "train_seconds": seconds,
                    "clusters_without_semantic_id": float(inputs.clusters_without_semantic_id),
                    "training_cuts": float(len(cuts) if cuts is not None else 0),
                    "pairs_per_s": float(np.mean([h["pairs_per_s"] for h in history])) if history else 0.0},
        "history": history,
    }
    store.write_card(MODEL, version, card)
    log.info("TWIN ranker %s: test AUC %.4f, GAUC %.4f, fusion %s", version, metrics["auc"], metrics["gauc"],
             fusion.to_card())
    return {"version": version, **card["metrics"], "fusion": fusion.to_card()}
