"""Serving the TWIN-V2 ranker: load a trained ranker (and the fusion its card chose), score candidates, and
its AUC/GAUC on held-out events (torch). The union it orders: nightly.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.config import TwinConfig
from models.examples import Examples
from models.metrics import auc, gauc
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.ranking.examples import UserClusters, labelled_pairs, with_recent_events
from pipelines.ranking.fusion import RANKER_ONLY, Fusion
from pipelines.ranking.inputs import RankerInputs

MODEL = "twin"  # the artifact store's name for the ranker
WEIGHTS_FILE = "twin.pt"


def resolve_ranker(store: ArtifactStore, version: str | None, rqvae_version: str) -> tuple[str, dict]:
    """(version, card) of a trained ranker (None: the latest), trained on RQ-VAE `rqvae_version`'s IDs."""
    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    if card["rqvae_version"] != rqvae_version:
        raise UpstreamTableError(f"ranker {version} was trained on RQ-VAE {card['rqvae_version']} IDs; "
                                 f"gold.semantic_ids holds {rqvae_version}: train the ranker again")
    return version, card


def load_ranker(store: ArtifactStore, version: str | None, rqvae_version: str, device: str | None = None):
    """(model, version, fusion) of a trained ranker, checked as resolve_ranker checks."""
    import torch

    from models.device import default_device
    from models.twin import TwinRanker

    version, card = resolve_ranker(store, version, rqvae_version)
    model_config = dict(card["config"]["model"])
    model_config["mlp_dims"] = tuple(model_config["mlp_dims"])
    model_config.setdefault("item_id_buckets", 0)  # rankers trained before the hashed item-ID feature
    target = default_device(device)
    model = TwinRanker(TwinConfig(**model_config))
    model.load_state_dict(torch.load(store.directory(MODEL, version) / card["weights"], map_location=target,
                                     weights_only=True)["model"])
    return model.to(target).eval(), version, fusion_of(card)


def fusion_of(card: dict) -> Fusion:
    """The card's fusion; a ranker trained without retrievers (or before the union) ranks by its logit alone."""
    return Fusion.from_card(card) if card.get("fusion") else RANKER_ONLY


@dataclass(frozen=True)
class RankerFeatures:
    """What scoring a user's candidates needs: every item's vector and semantic ID, the keys each user's
    candidates attend over (the user's clusters, then their last raw events: `with_recent_events`)."""

    vectors: np.ndarray  # [N, d] by item row
    tokens: np.ndarray  # [N, levels + 1] by item row (`item_tokens`)
    clusters: UserClusters

    @classmethod
    def of(cls, inputs: RankerInputs, examples: Examples | None = None, recent: int = 0) -> RankerFeatures:
        """Keys of `examples`' users: their clusters and the last `recent` items of their histories (the
        ranker's config.recent_events); without examples, the clusters alone."""
        keys = inputs.clusters
        if examples is not None and recent:
            keys = with_recent_events(inputs.clusters, examples.users, examples.histories, recent)
        return cls(inputs.vectors, inputs.tokens, keys)


def ranker_logits(model, features: RankerFeatures, users: np.ndarray, candidates: np.ndarray,
                  precomputed=None) -> np.ndarray:
    """[U, K] ranker logits of each user's candidates (-inf where there is no candidate)."""
    import torch

    from models.twin_training import score

    device = next(model.parameters()).device
    vectors = torch.as_tensor(features.vectors, device=device)
    tokens = torch.as_tensor(features.tokens, device=device)
    positions = np.repeat(features.clusters.position(users), candidates.shape[1])
    flat = candidates.reshape(-1)
    flat_logits = np.full(flat.shape, -np.inf, dtype=np.float64)
    valid = flat >= 0
    clusters = features.clusters
    flat_logits[valid] = score(model, vectors, tokens, positions[valid], flat[valid], clusters.items, clusters.sizes,
                               clusters.cross, precomputed=precomputed)
    return flat_logits.reshape(candidates.shape)


def evaluate_ranker(model, inputs: RankerInputs, examples: Examples, negatives: int, seed: int) -> dict[str, float]:
    """AUC and GAUC on held-out next events against random catalog negatives (keys: the users' clusters and
    their histories' last events)."""
    import torch

    from models.twin_training import score

    rng = np.random.default_rng(seed)
    seen_by_user = dict(zip(inputs.retrieval.sequences.serve.users, inputs.retrieval.sequences.serve_seen, strict=True))
    keys = RankerFeatures.of(inputs, examples, model.config.recent_events).clusters
    pairs = labelled_pairs(examples.users, examples.targets, [seen_by_user[u] for u in examples.users],
                           keys, len(inputs.vectors), negatives, rng)
    device = next(model.parameters()).device
    scores = score(model, torch.as_tensor(inputs.vectors, device=device),
                   torch.as_tensor(inputs.tokens, device=device),
                   pairs.user_positions, pairs.items, *keys.arrays())
    return {"auc": auc(pairs.labels, scores), "gauc": gauc(pairs.users, pairs.labels, scores), "pairs": float(len(scores))}
