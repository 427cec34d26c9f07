"""Ranking: the TWIN-V2 ranker that orders the retrievers' union into tonight's list.

examples.py (pure: cluster arrays, labelled pairs), inputs.py (reads the tables), union.py (pure: the
retrievers' lists merged), fusion.py (pure: ranker logit + retriever ranks, chosen and gated),
nightly.py (union -> ranker -> fusion, shared by serving and evaluation), training.py (the training
job and the fusion's calibration), serving.py (load a ranker, its logits), config.py (depths).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "RerankConfig": "config",
    "CandidateUnion": "union",
    "union_of": "union",
    "Fusion": "fusion",
    "choose_fusion": "fusion",
    "NightlyModels": "nightly",
    "nightly_lists": "nightly",
    "RankerInputs": "inputs",
    "load_ranker_inputs": "inputs",
    "TrainTwinJobConfig": "training",
    "run_train_twin": "training",
    "load_ranker": "serving",
    "ranker_logits": "serving",
    "evaluate_ranker": "serving",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
