"""Item rows of a model trained on one catalog, read against tonight's (numpy): new items get no row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.seen import Seen
from pipelines.retrieval.sequences import ItemIndex


@dataclass(frozen=True)
class RowMap:
    """model row <-> tonight's index row; -1 where an item is on one side only."""

    to_index: np.ndarray  # [M]
    to_model: np.ndarray  # [N]

    @classmethod
    def between(cls, model_item_ids: np.ndarray, index: ItemIndex) -> RowMap:
        to_index = index.rows(model_item_ids)
        to_model = np.full(len(index.item_ids), -1, dtype=np.int64)
        to_model[to_index[to_index >= 0]] = np.flatnonzero(to_index >= 0)
        return cls(to_index, to_model)

    def histories(self, histories: np.ndarray) -> np.ndarray:
        """Index rows -> model rows, items the model never saw dropped (kept right-aligned)."""
        mapped = np.where(histories >= 0, self.to_model[np.maximum(histories, 0)], -1)
        out = np.full_like(mapped, -1)
        for row, values in enumerate(mapped):
            known = values[values >= 0]
            if len(known):
                out[row, -len(known):] = known
        return out

    def seen(self, seen: Seen) -> list[np.ndarray]:
        return [m[m >= 0] for m in (self.to_model[np.asarray(s, dtype=np.int64)] for s in seen)]

    def items(self, model_rows: np.ndarray) -> np.ndarray:
        """Model rows -> index rows (-1 stays -1; an item gone from tonight's catalog becomes -1)."""
        return np.where(model_rows >= 0, self.to_index[np.maximum(model_rows, 0)], -1)
