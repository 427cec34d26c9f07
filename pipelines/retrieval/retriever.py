"""The retriever family: every candidate source has one small surface, so tonight's union, the ranker's
training and the evaluation treat TIGER, SASRec and popularity alike.

    spec = retriever_spec("sasrec")
    version = spec.fit(context)                        # trains, writes artifacts/sasrec/<version>/ + card
    model = spec.load(store, version, inputs, None, False)   # checks the card and the weights' checksums
    found = model.top_k(examples, k=50, seen=seen)     # item rows and scores, seen items never

`seen` is the one seen set (models/seen.py): every method excludes the same items. Examples may be wider
than a retriever reads; each one crops to its own history length. Adding a retriever is one module with
a `RetrieverSpec` and one `register` call in registry.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.examples import Examples
from models.seen import Seen
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.retrieval.inputs import RetrievalInputs
from pipelines.retrieval.sequences import ItemIndex


@dataclass(frozen=True)
class Retrieved:
    """Each example's top-k: item rows best first (-1 = none) and the retriever's own scores."""

    items: np.ndarray  # [E, k] int64
    scores: np.ndarray  # [E, k] float64, higher is better; -inf where there is no item

    def __post_init__(self) -> None:
        if self.items.shape != self.scores.shape:
            raise ValueError(f"items {self.items.shape} and scores {self.scores.shape} differ")


class Retriever(Protocol):
    """A trained retriever, loaded from its artifact."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def top_k(self, examples: Examples, k: int, seen: Seen | None) -> Retrieved: ...


class ItemCatalog(Protocol):
    """What loading a retriever needs: tonight's item rows and the RQ-VAE behind their semantic IDs
    (RetrievalInputs has both; serving, which reads no split, uses `ServingItems`)."""

    @property
    def index(self) -> ItemIndex: ...

    @property
    def rqvae_version(self) -> str: ...

    @property
    def item_vectors(self) -> np.ndarray | None:
        """gold.item_embeddings aligned to the index rows (None: not loaded; TIGER's dense head needs them)."""
        ...


@dataclass(frozen=True)
class ServingItems:
    index: ItemIndex
    rqvae_version: str
    item_vectors: np.ndarray | None = None


@dataclass(frozen=True)
class FitContext:
    """What a retriever's training reads: the same inputs, budget and seed for every retriever."""

    catalog: Catalog
    store: ArtifactStore
    inputs: RetrievalInputs
    run_date: dt.date
    minutes: float | None = None  # wall-clock budget; None: the retriever's own default
    seed: int = 0
    device: str | None = None
    size: str = "paper"  # the preset (pipelines/presets.py) for retrievers that have sizes
    version: str | None = None  # None: the retriever's default naming
    promote: bool = True  # make it the version jobs use by default (LATEST)
    refit: bool = False  # after selection, also fit serving weights on every event for the chosen epochs
    processes: int = 1  # data-parallel training processes (pipelines/training_processes.py)


@dataclass(frozen=True)
class RetrieverSpec:
    name: str  # the artifact store's model name and the candidates' `retrievers` entry
    fit: Callable[[FitContext], str]  # trains and writes artifacts/<name>/<version>/; returns the version
    # store, version, items, device, serving: the weights refit on every event (tonight's candidates) rather
    # than the held-out ones validation chose (evaluation, gates, the ranker's calibration)
    load: Callable[[ArtifactStore, str | None, ItemCatalog, str | None, bool], Retriever]
    description: str = ""


def retrieval_version(prefix: dt.date, inputs: RetrievalInputs) -> str:
    """<run date>-s<semantic_ids version>-e<events version>: the tables a version was trained on."""
    from pipelines.lakehouse.catalog import GOLD_SEMANTIC_IDS, SILVER_EVENTS

    return (f"{prefix:%Y%m%d}-s{inputs.table_versions[GOLD_SEMANTIC_IDS.name]}"
            f"-e{inputs.table_versions[SILVER_EVENTS.name]}")
