"""How the TWIN-V2 ranker orders the retrievers' union: one setting for training, evaluating and serving.

No heavy imports: DAG files read these defaults for their Params.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RerankConfig:
    # Each retriever's top-N in the union the ranker orders. The fusion is chosen on unions of exactly this depth
    # and the ranker's card records it, so evaluation and tonight's candidates order the same kind of list.
    depth: int = 50
    final_k: int = 20  # list length after the ranker
    # Share of the validation users the ranker does not train on: the fusion is chosen and gated on them.
    calibration_share: float = 0.2
    hard_negative_pool: int = 20  # the union's first N that hard negatives are drawn from in training
