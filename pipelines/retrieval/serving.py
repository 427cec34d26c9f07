"""Serving TIGER: load a trained model that matches tonight's semantic IDs, and its top-k per user
by constrained beam search. Used by the nightly candidates, the evaluation and the ranker's training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.examples import Examples
from models.seen import Seen
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_SEMANTIC_IDS
from pipelines.retrieval.retriever import ItemCatalog, Retrieved
from pipelines.retrieval.sequences import ItemIndex

if TYPE_CHECKING:
    pass

MODEL = "tiger"  # the artifact store's name for TIGER models


def resolve_tiger(store: ArtifactStore, version: str | None, rqvae_version: str) -> tuple[str, dict]:
    """(version, card) of a TIGER model (None: the latest); fails clearly when gold.semantic_ids (built by
    RQ-VAE `rqvae_version`) was rebuilt under another RQ-VAE since it trained."""
    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    if card["rqvae_version"] != rqvae_version:
        raise UpstreamTableError(
            f"TIGER {version} was trained on RQ-VAE {card['rqvae_version']} IDs but {GOLD_SEMANTIC_IDS.name} "
            f"now holds RQ-VAE {rqvae_version} IDs: train TIGER again"
        )
    return version, card


def load_tiger(store: ArtifactStore, version: str | None, rqvae_version: str, device: str | None,
               serving: bool = False):
    """(model, version, card), checked as resolve_tiger checks; `serving`: the weights refit on every event
    when the version has them (tonight's candidates), else the held-out best epoch."""
    from models.config import TigerConfig
    from models.tiger_training import load_weights

    version, card = resolve_tiger(store, version, rqvae_version)
    model_config = dict(card["config"]["model"])
    weights = (card.get("serving_weights") if serving else None) or card["weights"]
    model = load_weights(TigerConfig(**model_config), store.directory(MODEL, version) / weights, device)
    return model, version, card


def tiger_top_k(model, index: ItemIndex, examples: Examples, top_k: int, beam_width: int | None,
                exclude_history: bool, batch_size: int | None = None, progress: bool = True, exclude_items=None,
                fast: bool = True, dense: DenseServing | None = None):
    """TIGER's top-k items per example (fast beam search; `fast=False`: the reference, for checks);
    batch_size None: as many users as memory holds; `dense`: a dense head's inputs and beam weight."""
    import torch

    from models.beam_search import SemanticIdTrie
    from models.tiger_training import recommend

    device = next(model.parameters()).device
    trie = SemanticIdTrie(index.codes, model.config.codebook_size).to(device)
    codes = torch.as_tensor(index.codes, device=device)
    return recommend(model, codes, trie, examples,
                     top_k=top_k, beam_width=beam_width or top_k, exclude_history=exclude_history,
                     batch_size=batch_size, progress=progress, exclude_items=exclude_items, fast=fast,
                     dense=None if dense is None else dense.inputs,
                     beam_weight=0.5 if dense is None else dense.beam_weight)


@dataclass(frozen=True)
class DenseServing:
    """A dense head's serving inputs (models.tiger_training.DenseInputs) and the beam weight validation chose."""

    inputs: Any
    beam_weight: float


def dense_serving(store: ArtifactStore, version: str, card: dict, weights: str, items: ItemCatalog) -> DenseServing:
    """The item vectors and cold items (no training example of `weights` holds them) a dense head serves."""
    import pyarrow.parquet as pq

    from models.tiger import item_hashes
    from models.tiger_training import DenseInputs

    vectors = items.item_vectors
    if vectors is None:
        raise UpstreamTableError(f"TIGER {version} has a dense head: serving it needs gold.item_embeddings")
    trained_file = card["dense"]["trained_items"].get(weights)
    trained = pq.read_table(store.directory(MODEL, version) / trained_file).column("item_id").to_numpy(
        zero_copy_only=False) if trained_file else np.zeros(0, dtype=object)
    cold = np.ones(len(items.index.item_ids), dtype=bool)
    rows = items.index.rows(trained)
    cold[rows[rows >= 0]] = False
    return DenseServing(DenseInputs(vectors, np.flatnonzero(cold), item_hashes(items.index.item_ids)),
                        float(card["dense"]["beam_weight"] or 0.0))


@dataclass(frozen=True)
class TigerRetriever:
    """TIGER behind the retriever surface: constrained beam search over tonight's semantic IDs."""

    model: Any
    version: str
    index: ItemIndex
    beam_width: int | None = None  # None: k, and at least 20 (a top-10 from a beam of 10 misses items)
    batch_size: int | None = None
    name: str = MODEL
    dense: DenseServing | None = None

    def top_k(self, examples: Examples, k: int, seen: Seen | None) -> Retrieved:
        width = self.model.config.max_history
        cropped = Examples(examples.users, examples.histories[:, -width:], examples.targets)
        found = tiger_top_k(self.model, self.index, cropped, k, self.beam_width or max(k, 20), seen is not None,
                            self.batch_size,
                            progress=False, exclude_items=seen, dense=self.dense)
        items = found.items.numpy()
        return Retrieved(items, np.where(items >= 0, found.scores.numpy().astype(np.float64), -np.inf))


def load_tiger_retriever(store: ArtifactStore, version: str | None, inputs: ItemCatalog,
                         device: str | None = None, serving: bool = False) -> TigerRetriever:
    model, version, card = load_tiger(store, version, inputs.rqvae_version, device, serving)
    dense = None
    if model.config.dense_head:
        weights = (card.get("serving_weights") if serving else None) or card["weights"]
        dense = dense_serving(store, version, card, weights, inputs)
    return TigerRetriever(model, version, inputs.index, dense=dense)
