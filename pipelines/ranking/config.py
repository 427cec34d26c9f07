"""How the TWIN-V2 ranker reorders TIGER's list: one setting for training, evaluating and serving the blend.

No heavy imports: DAG files read these defaults for their Params.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RerankConfig:
    # TIGER's top-N that the ranker reorders. The blend weight is chosen on lists of exactly this depth and the
    # ranker's card records it, so evaluation and tonight's candidates reorder the same kind of list.
    depth: int = 50
    final_k: int = 20  # list length after the ranker
    # Share of the validation users the ranker does not train on: the blend weight is chosen on them.
    calibration_share: float = 0.2
    hard_negative_pool: int = 20  # TIGER's top-N that hard negatives are drawn from in training
