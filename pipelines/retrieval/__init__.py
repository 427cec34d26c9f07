"""Retrieval: TIGER, from the lakehouse to a trained model to each user's top-k.

sequences.py (pure: item index and every role's examples), inputs.py (reads
the tables), training.py (the training job), serving.py (load a model, top-k
by constrained beam search).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "ItemIndex": "sequences",
    "SequenceData": "sequences",
    "build_sequences": "sequences",
    "RetrievalInputs": "inputs",
    "load_retrieval_inputs": "inputs",
    "TrainTigerJobConfig": "training",
    "run_train_tiger": "training",
    "load_tiger": "serving",
    "tiger_top_k": "serving",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
