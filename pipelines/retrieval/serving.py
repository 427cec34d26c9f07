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
    from models.cold_start import ColdItems

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
                fast: bool = True, dense: DenseServing | None = None, cold: ColdItems | None = None):
    """TIGER's top-k items per example (fast beam search; `fast=False`: the reference, for checks);
    batch_size None: as many users as memory holds; `dense`: a dense head's inputs and beam weight; `cold`:
    the items with an ID and no training event, and the share of each list they may take."""
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
                     beam_weight=0.5 if dense is None else dense.beam_weight, cold=cold)


@dataclass(frozen=True)
class DenseServing:
    """A dense head's serving inputs (models.tiger_training.DenseInputs) and the beam weight validation chose."""

    inputs: Any
    beam_weight: float


def cold_item_rows(store: ArtifactStore, version: str, card: dict, weights: str, index: ItemIndex) -> np.ndarray | None:
    """The rows of `index` (tonight's IDs) that no training example of `weights` held: cold items. None when
    the card does not say which items trained (a model written before cards recorded them)."""
    import pyarrow.parquet as pq

    recorded = card.get("trained_items") or card.get("dense", {}).get("trained_items") or {}
    trained_file = recorded.get(weights)
    if trained_file is None:
        return None
    trained = pq.read_table(store.directory(MODEL, version) / trained_file).column("item_id").to_numpy(
        zero_copy_only=False)
    cold = np.ones(len(index.item_ids), dtype=bool)
    rows = index.rows(trained)
    cold[rows[rows >= 0]] = False
    return np.flatnonzero(cold)


def dense_serving(store: ArtifactStore, version: str, card: dict, weights: str, items: ItemCatalog) -> DenseServing:
    """The item vectors and cold items (no training example of `weights` holds them) a dense head serves."""
    from models.tiger import item_hashes
    from models.tiger_training import DenseInputs

    vectors = items.item_vectors
    if vectors is None:
        raise UpstreamTableError(f"TIGER {version} has a dense head: serving it needs gold.item_embeddings")
    cold = cold_item_rows(store, version, card, weights, items.index)
    if cold is None:  # every item counts as cold for the head: it never saw an id embedding trained
        cold = np.arange(len(items.index.item_ids))
    return DenseServing(DenseInputs(vectors, cold, item_hashes(items.index.item_ids)),
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
    cold: ColdItems | None = None  # items with an ID and no training event, given the last places of a list

    def top_k(self, examples: Examples, k: int, seen: Seen | None) -> Retrieved:
        width = self.model.config.max_history
        cropped = Examples(examples.users, examples.histories[:, -width:], examples.targets)
        found = tiger_top_k(self.model, self.index, cropped, k, self.beam_width or max(k, 20), seen is not None,
                            self.batch_size,
                            progress=False, exclude_items=seen, dense=self.dense, cold=self.cold)
        items = found.items.numpy()
        return Retrieved(items, np.where(items >= 0, found.scores.numpy().astype(np.float64), -np.inf))


def with_cold_share(retriever: TigerRetriever, share: float | None) -> TigerRetriever:
    """`retriever` with cold items taking `share` of each list (None: as loaded, models.cold_start.COLD_SHARE)."""
    import dataclasses

    from models.cold_start import ColdItems

    if share is None or retriever.cold is None:
        return retriever
    return dataclasses.replace(retriever, cold=ColdItems(retriever.cold.rows, share))


def load_tiger_retriever(store: ArtifactStore, version: str | None, inputs: ItemCatalog,
                         device: str | None = None, serving: bool = False) -> TigerRetriever:
    from models.cold_start import ColdItems

    model, version, card = load_tiger(store, version, inputs.rqvae_version, device, serving)
    weights = (card.get("serving_weights") if serving else None) or card["weights"]
    dense = dense_serving(store, version, card, weights, inputs) if model.config.dense_head else None
    cold = cold_item_rows(store, version, card, weights, inputs.index)
    return TigerRetriever(model, version, inputs.index, dense=dense, cold=None if cold is None else ColdItems(cold))
