"""The TWIN-V2 ranker's inputs, training job and reranking (torch; reads Delta with delta-rs).

Training respects the shared split: gold.user_clusters must be built without
each user's validation and test events (`cluster-behaviors --holdout
valid_test`), checked here; the validation event is the positive, the test
event is kept for evaluation. Negatives: catalog items the user never had,
half of them from TIGER's top candidates when a TIGER model is available.
The rerank orders TIGER's candidates by TIGER's score + w * the ranker's
logit; w is chosen on validation users held out of training (`Blend`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from models.config import TwinConfig, TwinTrainConfig
from pipelines.artifacts import ArtifactStore
from pipelines.delta import read_table_arrow
from pipelines.ranking import blended_order, choose_blend_weight
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
    # The nightly list is TIGER's score + w * the ranker's logit over TIGER's top `rerank_from`; w is chosen
    # on this share of the validation users, whom the ranker does not train on (w = 0 when it does not help).
    calibration_share: float = 0.2
    rerank_from: int = 50


@dataclass(frozen=True)
class Blend:
    weight: float  # inf: the ranker's order alone
    calibration_users: int
    recall_by_weight: dict[str, float]

    def to_card(self) -> dict[str, object]:
        return {"weight": None if math.isinf(self.weight) else self.weight,
                "calibration_users": self.calibration_users, "recall@10_by_weight": self.recall_by_weight}


RANKER_ONLY = Blend(math.inf, 0, {})


def blend_of(card: dict) -> Blend:
    """The card's blend; a card without one (or a ranker trained without TIGER) ranks by the logit alone."""
    blend = card.get("blend") or {}
    if blend.get("weight") is None:
        return RANKER_ONLY
    return Blend(float(blend["weight"]), int(blend["calibration_users"]), dict(blend["recall@10_by_weight"]))


def calibration_users(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """bool mask of the users held out of ranker training to choose the blend (stable per user id)."""
    return np.array([zlib.crc32(f"{seed}:{u}".encode()) % 10_000 < share * 10_000 for u in users], dtype=bool)


def calibrate_blend(model, inputs: RankerInputs, examples: Examples, tiger_items: np.ndarray,
                    tiger_scores: np.ndarray) -> Blend:
    """Choose w for TIGER score + w * logit by Recall@10 of `examples`' targets (users the ranker did not
    train on) within TIGER's candidates."""
    logits = ranker_logits(model, inputs, examples.users, tiger_items)
    scores = np.where(tiger_items >= 0, tiger_scores, -np.inf)
    weight, by_weight = choose_blend_weight(scores, logits, tiger_items, examples.targets)
    log.info("blend weight %s on %d calibration users (Recall@10 by weight: %s)", weight, len(examples), by_weight)
    return Blend(weight, len(examples), by_weight)


def tiger_candidates_for(store: ArtifactStore, inputs: RetrievalInputs, examples: Examples, k: int,
                         version: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """TIGER's top-k (items, scores) for `examples`, or None when no TIGER model fits the current IDs."""
    from pipelines.candidates import load_tiger, tiger_top_k

    try:
        model, _, _ = load_tiger(store, version, inputs, None)
    except (FileNotFoundError, UpstreamTableError) as exc:
        log.info("no TIGER candidates: %s", exc)
        return None
    top = tiger_top_k(model, inputs, examples, k, None, True, batch_size=128)
    return top.items.numpy(), top.scores.numpy().astype(np.float64)


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
               hard: np.ndarray | None = None, clusters: UserClusters | None = None,
               rows: np.ndarray | None = None):
    """Train on each user's validation event (positive) + negatives, for the validation examples `rows`
    (default all; `hard` aligns with them); `clusters` overrides the inputs' (the raw-events ablation)."""
    from models.twin_training import train_twin

    clusters = clusters or inputs.clusters
    valid = inputs.retrieval.sequences.valid
    if rows is not None:
        valid = valid.take(rows)
    seen_by_user = dict(zip(inputs.retrieval.sequences.serve.users, inputs.retrieval.sequences.serve_seen, strict=True))
    pairs = labelled_pairs(valid.users, valid.targets, [seen_by_user[u] for u in valid.users], clusters,
                           len(inputs.vectors), train.negatives, np.random.default_rng(train.seed),
                           hard=list(hard) if hard is not None else None, hard_share=train.hard_negative_share)
    config = dataclasses.replace(model_config, item_dim=inputs.vectors.shape[1],
                                 codebook_size=max(model_config.codebook_size, int(inputs.retrieval.index.codes.max()) + 1))
    return train_twin(config, train, inputs.vectors, inputs.retrieval.index.codes, pairs.user_positions,
                      pairs.items, pairs.labels, *_arrays(clusters))


def fit_ranker_and_blend(inputs: RankerInputs, model_config: TwinConfig, train: TwinTrainConfig,
                         tiger: tuple[np.ndarray, np.ndarray] | None, calibration_share: float,
                         hard_negatives: bool = True, clusters: UserClusters | None = None):
    """(model, history, blend): the ranker trained on the validation users outside the calibration share
    (TIGER's top 20 as hard negatives), the blend weight chosen on the others within TIGER's `tiger`
    (items, scores) of every validation user. Without TIGER: every user trains, the logit ranks alone."""
    valid = inputs.retrieval.sequences.valid
    held = (calibration_users(valid.users, calibration_share, train.seed) if tiger is not None
            else np.zeros(len(valid), dtype=bool))
    if held.all():
        held[:] = False  # too few users to hold any out: train on all, rank by the logit
    train_rows = np.flatnonzero(~held)
    hard = tiger[0][train_rows, :20] if tiger is not None and hard_negatives else None
    model, history = fit_ranker(inputs, model_config, train, hard, clusters, rows=train_rows)
    blend = RANKER_ONLY
    if tiger is not None and held.any():
        view = inputs if clusters is None else dataclasses.replace(inputs, clusters=clusters)
        blend = calibrate_blend(model, view, valid.take(np.flatnonzero(held)), tiger[0][held], tiger[1][held])
    return model, history, blend


def run_train_twin(catalog: Catalog, store: ArtifactStore, config: TrainTwinJobConfig) -> dict[str, object]:
    import torch

    inputs = load_ranker_inputs(catalog)
    valid = inputs.retrieval.sequences.valid
    if len(valid) == 0:
        raise UpstreamTableError("no user has 3+ events: nothing to train the ranker on")
    tiger = tiger_candidates_for(store, inputs.retrieval, valid, config.rerank_from, config.tiger_version)
    started = time.perf_counter()
    model, history, blend = fit_ranker_and_blend(inputs, config.model, config.train, tiger,
                                                 config.calibration_share, config.hard_negatives)
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
        "hard_negatives_from_tiger": tiger is not None and config.hard_negatives,
        "blend": blend.to_card(),
        "metrics": {"test_auc": metrics["auc"], "test_gauc": metrics["gauc"], "train_seconds": seconds,
                    "clusters_without_semantic_id": float(inputs.clusters_without_semantic_id),
                    "pairs_per_s": float(np.mean([h["pairs_per_s"] for h in history])) if history else 0.0},
        "history": history,
    }
    store.write_card(MODEL, version, card)
    log.info("TWIN ranker %s: test AUC %.4f, GAUC %.4f, blend weight %s", version, metrics["auc"], metrics["gauc"],
             blend.weight)
    return {"version": version, **card["metrics"], "blend_weight": blend.to_card()["weight"]}


def load_ranker(store: ArtifactStore, version: str | None, inputs: RetrievalInputs, device: str | None = None):
    """(model, version, blend) of a trained ranker."""
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
    return model.to(target).eval(), version, blend_of(card)


def rerank(model, inputs: RankerInputs, users: np.ndarray, candidates: np.ndarray, keep: int,
           retrieval_scores: np.ndarray | None = None, blend_weight: float = math.inf,
           precomputed=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """candidates [U, K] item rows (-1 = none) -> (items [U, keep], ranker logits, positions in the
    TIGER list), ordered by TIGER's score + blend_weight * the ranker's logit (inf: the logit alone)."""
    logits = ranker_logits(model, inputs, users, candidates, precomputed)
    if retrieval_scores is None:
        if not math.isinf(blend_weight):
            raise ValueError("a finite blend weight needs the retrieval scores")
        retrieval_scores = np.zeros(candidates.shape)
    retrieval_scores = np.where(candidates >= 0, retrieval_scores, -np.inf)
    order = blended_order(retrieval_scores, logits, blend_weight)[:, :keep]
    items = np.take_along_axis(candidates, order, 1)
    scores = np.take_along_axis(logits, order, 1)
    return np.where(np.isfinite(scores), items, -1), scores, order


def ranker_logits(model, inputs: RankerInputs, users: np.ndarray, candidates: np.ndarray,
                  precomputed=None) -> np.ndarray:
    """[U, K] ranker logits of each user's candidates (-inf where there is no candidate)."""
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
    return flat_logits.reshape(candidates.shape)
