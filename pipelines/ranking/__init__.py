"""Ranking: the TWIN-V2 ranker that reorders TIGER's list.

examples.py (pure: cluster arrays, labelled pairs), inputs.py (reads the tables),
blend.py (TIGER score + w * ranker logit), training.py (the training job and the
blend's calibration), serving.py (load a ranker, rerank), config.py (rerank depth).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "RerankConfig": "config",
    "Blend": "blend",
    "blended_order": "blend",
    "choose_blend_weight": "blend",
    "RankerInputs": "inputs",
    "load_ranker_inputs": "inputs",
    "TrainTwinJobConfig": "training",
    "run_train_twin": "training",
    "load_ranker": "serving",
    "rerank": "serving",
    "evaluate_ranker": "serving",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
