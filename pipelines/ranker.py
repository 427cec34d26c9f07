"""The TWIN-V2 ranker's inputs, training job and reranking (torch; reads Delta with delta-rs).

Training respects the shared split: gold.user_clusters must be built without
each user's validation and test events (`cluster-behaviors --holdout
valid_test`), checked here; the validation event is the positive, the test
event is kept for evaluation. Negatives: catalog items the user never had,
half of them from TIGER's top candidates when a TIGER model is available.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from models.config import TwinConfig, TwinTrainConfig
from pipelines.artifacts import ArtifactStore
from pipelines.delta import read_table_arrow
from pipelines.retrieval import (
    RetrievalInputs,
    UpstreamTableError,
    item_vectors_by_row,
    load_retrieval_inputs,
)
from pipelines.sequences import Examples
from pipelines.tables import GOLD_USER_CLUSTERS, Catalog
from pipelines.twin_data import (
    CROSS_FEATURES,
    UserClusters,
    auc,
    gauc,
    labelled_pairs,
    user_clusters,
)

log = logging.getLogger(__name__)

MODEL = "twin"
WEIGHTS_FILE = "twin.pt"


@dataclass(frozen=True)
class RankerInputs:
    retrieval: RetrievalInputs
    vectors: np.ndarray  # [N, d] by item row
    clusters: UserClusters
    table_versions: dict[str, int]
    clusters_without_semantic_id: int  # left out of the ranker's view: their representative has no ID


def load_ranker_inputs(catalog: Catalog, retrieval: RetrievalInputs | None = None,
                       check_holdout: bool = True) -> RankerInputs:
    retrieval = retrieval or load_retrieval_inputs(catalog)
    columns = ["user_id", "cluster_id", "size", "representative_item_id", "history_events", *CROSS_FEATURES]
    table, version = read_table_arrow(catalog, GOLD_USER_CLUSTERS.name, columns=columns)
    if table.num_rows == 0:
        raise UpstreamTableError(f"{GOLD_USER_CLUSTERS.name} is empty (version {version}): run cluster-behaviors")
    frame = table.to_pandas()
    if check_holdout:
        check_no_held_out_events(frame, retrieval)
    clusters = user_clusters(frame, retrieval.index)
    unmapped = int((retrieval.index.rows(frame["representative_item_id"]) < 0).sum())
    if unmapped:
        log.warning("%d cluster(s) have a representative item without a semantic ID; the ranker skips them "
                    "(run assign-semantic-ids after embed-items)", unmapped)
    return RankerInputs(retrieval, item_vectors_by_row(catalog, retrieval), clusters,
                        {**retrieval.table_versions, GOLD_USER_CLUSTERS.name: version}, unmapped)


def check_no_held_out_events(clusters, retrieval: RetrievalInputs) -> None:
    """Users with held-out events must have clusters built from at most (all events - 2)."""
    held = set(retrieval.sequences.test.users)
    per_user = clusters.groupby("user_id")["history_events"].first()
    totals = dict(zip(retrieval.sequences.serve.users, retrieval.sequences.serve_events, strict=True))
    leaking = [u for u, n in per_user.items() if u in held and n > max(totals.get(u, 0), 1) - 2]
    if leaking:
        raise UpstreamTableError(
            f"{GOLD_USER_CLUSTERS.name} includes held-out events for {len(leaking)} user(s) (e.g. {leaking[0]}): "
            "run cluster-behaviors --holdout valid_test before training or evaluating the ranker"
        )


@dataclass(frozen=True)
class TrainTwinJobConfig:
    run_date: dt.date
    model: TwinConfig = field(default_factory=TwinConfig)
    train: TwinTrainConfig = field(default_factory=TwinTrainConfig)
    version: str | None = None
    hard_negatives: bool = True  # from TIGER's candidates when a TIGER model exists
    tiger_version: str | None = None


def tiger_candidates_for(store: ArtifactStore, inputs: RetrievalInputs, examples: Examples, k: int,
                         version: str | None = None) -> np.ndarray | None:
    """TIGER's top-k for `examples`, or None when no TIGER model fits the current IDs."""
    from pipelines.candidates import load_tiger, tiger_top_k

    try:
        model, _, _ = load_tiger(store, version, inputs, None)
    except (FileNotFoundError, UpstreamTableError) as exc:
        log.info("no TIGER candidates: %s", exc)
        return None
    return tiger_top_k(model, inputs, examples, k, None, True, batch_size=128).items.numpy()


def _arrays(clusters: UserClusters):
    return clusters.items, clusters.sizes, clusters.cross


def evaluate_ranker(model, inputs: RankerInputs, examples: Examples, negatives: int, seed: int) -> dict[str, float]:
    """AUC and GAUC on held-out next events against random catalog negatives."""
    import torch

    from models.twin_training import score

    rng = np.random.default_rng(seed)
    seen_by_user = dict(zip(inputs.retrieval.sequences.serve.users, inputs.retrieval.sequences.serve_seen, strict=True))
    pairs = labelled_pairs(examples.users, examples.targets, [seen_by_user[u] for u in examples.users],
                           inputs.clusters, len(inputs.vectors), negatives, rng)
    device = next(model.parameters()).device
    scores = score(model, torch.as_tensor(inputs.vectors, device=device),
                   torch.as_tensor(inputs.retrieval.index.codes, device=device),
                   pairs.user_positions, pairs.items, *_arrays(inputs.clusters))
    return {"auc": auc(pairs.labels, scores), "gauc": gauc(pairs.users, pairs.labels, scores), "pairs": float(len(scores))}


def fit_ranker(inputs: RankerInputs, model_config: TwinConfig, train: TwinTrainConfig,
               hard: np.ndarray | None = None, clusters: UserClusters | None = None):
    """Train on each user's validation event (positive) + negatives; `clusters` overrides the inputs'
    (the raw-events ablation)."""
    from models.twin_training import train_twin

    clusters = clusters or inputs.clusters
    valid = inputs.retrieval.sequences.valid
    seen_by_user = dict(zip(inputs.retrieval.sequences.serve.users, inputs.retrieval.sequences.serve_seen, strict=True))
    pairs = labelled_pairs(valid.users, valid.targets, [seen_by_user[u] for u in valid.users], clusters,
                           len(inputs.vectors), train.negatives, np.random.default_rng(train.seed),
                           hard=list(hard) if hard is not None else None, hard_share=train.hard_negative_share)
    config = dataclasses.replace(model_config, item_dim=inputs.vectors.shape[1],
                                 codebook_size=max(model_config.codebook_size, int(inputs.retrieval.index.codes.max()) + 1))
    return train_twin(config, train, inputs.vectors, inputs.retrieval.index.codes, pairs.user_positions,
                      pairs.items, pairs.labels, *_arrays(clusters))


def run_train_twin(catalog: Catalog, store: ArtifactStore, config: TrainTwinJobConfig) -> dict[str, object]:
    import torch

    inputs = load_ranker_inputs(catalog)
    if len(inputs.retrieval.sequences.valid) == 0:
        raise UpstreamTableError("no user has 3+ events: nothing to train the ranker on")
    hard = None
    if config.hard_negatives:
        hard = tiger_candidates_for(store, inputs.retrieval, inputs.retrieval.sequences.valid, 20, config.tiger_version)
    started = time.perf_counter()
    model, history = fit_ranker(inputs, config.model, config.train, hard)
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
        "run_date": config.run_date.isoformat(), "weights": WEIGHTS_FILE,
        "hard_negatives_from_tiger": hard is not None,
        "metrics": {"test_auc": metrics["auc"], "test_gauc": metrics["gauc"], "train_seconds": seconds,
                    "clusters_without_semantic_id": float(inputs.clusters_without_semantic_id),
                    "pairs_per_s": float(np.mean([h["pairs_per_s"] for h in history])) if history else 0.0},
        "history": history,
    }
    store.write_card(MODEL, version, card)
    log.info("TWIN ranker %s: test AUC %.4f, GAUC %.4f", version, metrics["auc"], metrics["gauc"])
    return {"version": version, **card["metrics"]}


def load_ranker(store: ArtifactStore, version: str | None, inputs: RetrievalInputs, device: str | None = None):
    import torch

    from models.rqvae import default_device
    from models.twin import TwinRanker

    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    if card["rqvae_version"] != inputs.rqvae_version:
        raise UpstreamTableError(f"ranker {version} was trained on RQ-VAE {card['rqvae_version']} IDs; "
                                 f"gold.semantic_ids holds {inputs.rqvae_version}: train the ranker again")
    model_config = dict(card["config"]["model"])
    model_config["mlp_dims"] = tuple(model_config["mlp_dims"])
    target = default_device(device)
    model = TwinRanker(TwinConfig(**model_config))
    model.load_state_dict(torch.load(store.directory(MODEL, version) / card["weights"], map_location=target,
                                     weights_only=True)["model"])
    return model.to(target).eval(), version


def rerank(model, inputs: RankerInputs, users: np.ndarray, candidates: np.ndarray, keep: int,
           precomputed=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """candidates [U, K] item rows (-1 = none) -> (items [U, keep], ranker scores, positions in the
    TIGER list) ordered by the ranker's logit."""
    import torch

    from models.twin_training import score

    device = next(model.parameters()).device
    vectors = torch.as_tensor(inputs.vectors, device=device)
    codes = torch.as_tensor(inputs.retrieval.index.codes, device=device)
    positions = np.repeat(inputs.clusters.position(users), candidates.shape[1])
    flat = candidates.reshape(-1)
    flat_logits = np.full(flat.shape, -np.inf, dtype=np.float64)
    valid = flat >= 0
    clusters = inputs.clusters
    flat_logits[valid] = score(model, vectors, codes, positions[valid], flat[valid], clusters.items, clusters.sizes,
                               clusters.cross, precomputed=precomputed)
    logits = flat_logits.reshape(candidates.shape)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :keep]
    items = np.take_along_axis(candidates, order, 1)
    scores = np.take_along_axis(logits, order, 1)
    return np.where(np.isfinite(scores), items, -1), scores, order
