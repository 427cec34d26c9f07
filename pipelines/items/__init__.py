"""Items: content and collaborative vectors, the RQ-VAE, and every item's semantic ID.

text_embeddings.py and collab_embeddings.py (pure), embedding_job.py (Spark ->
gold.item_embeddings), semantic_ids.py (pure: collision tokens, code metrics),
rqvae_job.py (trains the RQ-VAE), assignment_job.py (Spark -> gold.semantic_ids),
config.py (defaults the DAGs read).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "EmbedItemsConfig": "embedding_job",
    "run_embed_items": "embedding_job",
    "TrainRQVAEJobConfig": "rqvae_job",
    "run_train_rqvae": "rqvae_job",
    "retrain_decision": "rqvae_job",
    "AssignSemanticIdsConfig": "assignment_job",
    "run_assign_semantic_ids": "assignment_job",
    "assign_semantic_ids": "semantic_ids",
    "code_metrics": "semantic_ids",
    "code_usage": "semantic_ids",
    "TextEmbeddingConfig": "text_embeddings",
    "embed_texts": "text_embeddings",
    "AlsConfig": "collab_embeddings",
    "als_item_vectors": "collab_embeddings",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
