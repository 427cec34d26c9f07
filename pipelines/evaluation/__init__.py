"""Evaluation: TIGER (and TIGER + ranker) against baselines on the same held-out users.

baselines.py (most popular, embedding kNN), evaluate.py (the job); SASRec is a retriever
(models/sasrec.py, pipelines/retrieval/). The metrics
themselves are models/metrics.py, shared with the training loops.
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "popularity_topk": "baselines",
    "knn_topk": "baselines",
    "EvaluateConfig": "evaluate",
    "evaluate_methods": "evaluate",
    "run_evaluate": "evaluate",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
