"""Serving the TWIN-V2 ranker: load a trained ranker, score candidates, reorder TIGER's list by the blend,
and its AUC/GAUC on held-out events (torch)."""

from __future__ import annotations

import math

import numpy as np

from models.config import TwinConfig
from models.examples import Examples
from models.metrics import auc, gauc
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.ranking.blend import blend_of, blended_order
from pipelines.ranking.examples import labelled_pairs
from pipelines.ranking.inputs import RankerInputs
from pipelines.retrieval.inputs import RetrievalInputs

MODEL = "twin"  # the artifact store's name for the ranker
WEIGHTS_FILE = "twin.pt"


def load_ranker(store: ArtifactStore, version: str | None, inputs: RetrievalInputs, device: str | None = None):
    """(model, version, blend) of a trained ranker."""
    import torch

    from models.device import default_device
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
                   pairs.user_positions, pairs.items, *inputs.clusters.arrays())
    return {"auc": auc(pairs.labels, scores), "gauc": gauc(pairs.users, pairs.labels, scores), "pairs": float(len(scores))}
