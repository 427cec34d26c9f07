"""Tonight's list, one code path for serving and evaluation: every retriever's top-K, their union, the
TWIN-V2 ranker's logit on each candidate, the card's fusion; popularity for users with no usable history.

    models = load_nightly_models(store, inputs, names=("tiger", "sasrec"), ranker_version=None)
    lists = nightly_lists(models, examples, seen, keys)     # keys: the users' clusters + recent events
    lists.items(k)                                           # [E, k] item rows, best first
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.examples import Examples
from models.seen import Seen
from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.ranking.examples import UserClusters
from pipelines.ranking.fusion import Fusion
from pipelines.ranking.union import CandidateUnion, union_of
from pipelines.retrieval.registry import retriever_spec
from pipelines.retrieval.retriever import ItemCatalog, Retrieved, Retriever

log = logging.getLogger(__name__)

UNION_WIDTH = 50  # history items every retriever is given (each reads its own last N: TIGER 20, SASRec 50)
FALLBACK = "popularity"


def load_retrievers(store: ArtifactStore, names: Sequence[str], inputs: ItemCatalog,
                    versions: Mapping[str, str | None] | None = None, device: str | None = None,
                    missing_ok: bool = False, serving: bool = False) -> dict[str, Retriever]:
    """The named retrievers at `versions` (default: each one's served version). `missing_ok`: a retriever
    never trained is left out with a warning instead of failing. `serving`: their refit weights."""
    loaded: dict[str, Retriever] = {}
    for name in names:
        try:
            loaded[name] = retriever_spec(name).load(store, (versions or {}).get(name), inputs, device, serving)
        except (FileNotFoundError, UpstreamTableError) as exc:
            if not missing_ok:
                raise
            log.warning("retriever %s left out: %s", name, exc)
    return loaded


def retrieve_union(retrievers: Mapping[str, Retriever], examples: Examples, depth: int,
                   seen: Seen | None) -> CandidateUnion:
    return union_of({name: r.top_k(examples, depth, seen) for name, r in retrievers.items()})


@dataclass(frozen=True)
class NightlyModels:
    retrievers: dict[str, Retriever]
    fusion: Fusion
    ranker: Any | None = None  # TwinRanker; None: the fusion of the retrievers' ranks alone
    vectors: np.ndarray | None = None  # item vectors by row, for the ranker
    tokens: np.ndarray | None = None  # the ranker's item tokens by row
    fallback: Retriever | None = None  # popularity, for users no retriever can serve

    @property
    def versions(self) -> dict[str, str]:
        return {name: r.version for name, r in self.retrievers.items()}


@dataclass(frozen=True)
class NightlyLists:
    union: CandidateUnion
    order: np.ndarray  # [E, D] positions in the union, best first
    fused: np.ndarray  # [E, D] the fusion's score of each union candidate
    logits: np.ndarray | None  # [E, D] the ranker's logit of each union candidate

    def items(self, k: int) -> np.ndarray:
        items = np.take_along_axis(self.union.items, self.order, 1)[:, :k]
        return np.pad(items, ((0, 0), (0, max(0, k - items.shape[1]))), constant_values=-1)


def nightly_lists(models: NightlyModels, examples: Examples, seen: Seen | None, keys: UserClusters | None,
                  depth: int | None = None) -> NightlyLists:
    """Each example's union of the retrievers' top-`depth` (default: the fusion's), ordered by the fusion;
    users with no known item in their history get the fallback's list."""
    from pipelines.ranking.serving import RankerFeatures, ranker_logits

    depth = depth or models.fusion.depth
    no_history: np.ndarray = ~np.asarray((examples.histories >= 0).any(1))
    found = {name: r.top_k(examples, depth, seen) for name, r in models.retrievers.items()}
    if models.fallback is not None:
        backup = models.fallback.top_k(examples, depth, seen)
        found = {name: _without_rows(f, no_history) for name, f in found.items()}
        found[FALLBACK] = _without_rows(backup, ~no_history)
    union = union_of(found)
    logits = None
    if models.ranker is not None and keys is not None and union.items.shape[1]:
        assert models.vectors is not None and models.tokens is not None
        logits = ranker_logits(models.ranker, RankerFeatures(models.vectors, models.tokens, keys), examples.users,
                               union.items)
    fused = models.fusion.scores(union, logits)
    if FALLBACK in union.retrievers:  # fallback rows follow popularity's own order
        own = Fusion.single(union.retrievers, FALLBACK, depth).scores(union, None)
        fused = np.where(no_history[:, None], own, fused)
    order = np.argsort(-fused, axis=1, kind="stable")
    return NightlyLists(union, order, fused, logits)


def _without_rows(found: Retrieved, rows: np.ndarray) -> Retrieved:
    return Retrieved(np.where(rows[:, None], -1, found.items), np.where(rows[:, None], -np.inf, found.scores))
