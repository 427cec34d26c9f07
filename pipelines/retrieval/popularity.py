"""Most popular as a retriever: the fallback for users with no usable history (numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.examples import Examples
from models.seen import Seen
from pipelines.evaluation.baselines import popularity_topk
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.retrieval.item_rows import RowMap
from pipelines.retrieval.retriever import (
    FitContext,
    ItemCatalog,
    Retrieved,
    RetrieverSpec,
    retrieval_version,
)
from pipelines.retrieval.sequences import training_item_counts

MODEL = "popularity"
WEIGHTS_FILE = "popularity.pt"


def fit_popularity(context: FitContext) -> str:
    """Counts of the training events (what evaluation and gates score) and of every event (what serves)."""
    import torch

    from pipelines.retrieval.inputs import events_of

    inputs = context.inputs
    counts = training_item_counts(inputs.sequences.train, len(inputs.index.item_ids))
    rows = inputs.index.rows(events_of(context.catalog, inputs)["item_id"])
    every = np.bincount(rows[rows >= 0], minlength=len(inputs.index.item_ids)).astype(np.float64)
    version = context.version or retrieval_version(context.run_date, inputs)
    directory = context.store.directory(MODEL, version)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"counts": torch.as_tensor(counts), "serving_counts": torch.as_tensor(every),
                "item_ids": [str(i) for i in inputs.index.item_ids]}, directory / WEIGHTS_FILE)
    context.store.write_card(MODEL, version, {
        "data": inputs.table_versions, "run_date": context.run_date.isoformat(), "weights": WEIGHTS_FILE,
        "metrics": {"items_with_events": float((counts > 0).sum())}}, promote=context.promote)
    return version


@dataclass(frozen=True)
class PopularityRetriever:
    counts: np.ndarray  # by tonight's item row
    version: str
    name: str = MODEL

    def top_k(self, examples: Examples, k: int, seen: Seen | None) -> Retrieved:
        items = popularity_topk(self.counts, len(examples), k, seen)
        scores = np.where(items >= 0, np.log1p(self.counts[np.maximum(items, 0)]), -np.inf)
        return Retrieved(items, scores)


def load_popularity(store: ArtifactStore, version: str | None, inputs: ItemCatalog,
                    device: str | None = None, serving: bool = False) -> PopularityRetriever:
    import torch

    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    saved = torch.load(store.directory(MODEL, version) / card["weights"], map_location="cpu", weights_only=True)
    rows = RowMap.between(np.asarray(saved["item_ids"], dtype=object), inputs.index)
    counts = np.zeros(len(inputs.index.item_ids), dtype=np.float64)
    known = rows.to_index >= 0
    counts[rows.to_index[known]] = saved["serving_counts" if serving else "counts"].numpy()[known]
    return PopularityRetriever(counts, version)


SPEC = RetrieverSpec(MODEL, fit_popularity, load_popularity, "most popular training items (the fallback)")
