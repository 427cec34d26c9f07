"""The union of several retrievers' lists (numpy): one deduplicated candidate list per user, each candidate
with the rank and score every retriever gave it (what the ranker's fusion and gold.candidates record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipelines.retrieval.retriever import Retrieved


@dataclass(frozen=True)
class CandidateUnion:
    retrievers: tuple[str, ...]
    items: np.ndarray  # [E, D] item rows, -1 = padding; round-robin by rank (every retriever's 1st, then 2nd ...)
    ranks: np.ndarray  # [E, D, R] 1-based rank in each retriever's list, 0 = not in it
    scores: np.ndarray  # [E, D, R] each retriever's score, nan = not in it

    def __len__(self) -> int:
        return len(self.items)

    @property
    def found(self) -> np.ndarray:
        """[E, D, R] bool: retriever r found candidate d."""
        return self.ranks > 0

    def take(self, rows: np.ndarray) -> CandidateUnion:
        return CandidateUnion(self.retrievers, self.items[rows], self.ranks[rows], self.scores[rows])

    def of_retriever(self, name: str) -> np.ndarray:
        """[E, D] the union's items in `name`'s own order (items it did not find last, as -1)."""
        r = self.retrievers.index(name)
        ranks = np.where(self.ranks[..., r] > 0, self.ranks[..., r], np.iinfo(np.int32).max)
        order = np.argsort(ranks, axis=1, kind="stable")
        items = np.take_along_axis(self.items, order, 1)
        return np.where(np.take_along_axis(self.ranks[..., r], order, 1) > 0, items, -1)


def union_of(found: Mapping[str, Retrieved]) -> CandidateUnion:
    """Merge each retriever's top-k (same examples, same order) into one list per example."""
    names = tuple(found)
    if not names:
        raise ValueError("a union needs at least one retriever")
    lists = [found[n] for n in names]
    n_examples = len(lists[0].items)
    if any(len(f.items) != n_examples for f in lists):
        raise ValueError("every retriever must answer for the same examples")
    depth = sum(f.items.shape[1] for f in lists)
    width = max(f.items.shape[1] for f in lists)
    # round-robin: position p*R + r holds retriever r's p-th item
    stacked = np.full((n_examples, width, len(names)), -1, dtype=np.int64)
    stacked_scores = np.full(stacked.shape, np.nan)
    for r, f in enumerate(lists):
        stacked[:, : f.items.shape[1], r] = f.items
        stacked_scores[:, : f.items.shape[1], r] = f.scores
    flat = stacked.reshape(n_examples, -1)
    flat_rank = np.broadcast_to(np.repeat(np.arange(1, width + 1), len(names)), flat.shape)
    flat_retriever = np.broadcast_to(np.tile(np.arange(len(names)), width), flat.shape)
    flat_score = stacked_scores.reshape(n_examples, -1)

    items = np.full((n_examples, depth), -1, dtype=np.int64)
    ranks = np.zeros((n_examples, depth, len(names)), dtype=np.int32)
    scores = np.full((n_examples, depth, len(names)), np.nan)
    for e in range(n_examples):
        row = flat[e]
        valid = np.flatnonzero(row >= 0)
        unique, first, position = np.unique(row[valid], return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # union positions in round-robin order
        slot = np.empty(len(unique), dtype=np.int64)
        slot[order] = np.arange(len(unique))
        items[e, : len(unique)] = unique[order]
        where, back = slot[position][::-1], valid[::-1]  # reversed: an item listed twice keeps its best rank
        ranks[e, where, flat_retriever[e, back]] = flat_rank[e, back]
        scores[e, where, flat_retriever[e, back]] = flat_score[e, back]
    used = int((items >= 0).sum(1).max(initial=0))
    return CandidateUnion(names, items[:, :used], ranks[:, :used], scores[:, :used])
